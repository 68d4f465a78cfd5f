package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/client"
)

// triggersCmd is `jobgate triggers` (list) with list, get, create, update,
// delete and deliveries.
func (c *cli) triggersCmd() *cobra.Command {
	cmd := c.triggersListCmd("triggers")
	cmd.Short = "List the workspace's webhook triggers; create, change or delete one"
	cmd.AddCommand(c.triggersListCmd("list"), c.triggersGetCmd(), c.triggersCreateCmd(), c.triggersUpdateCmd(),
		c.triggersDeleteCmd(), c.triggersDeliveriesCmd())
	return cmd
}

func (c *cli) triggersListCmd(use string) *cobra.Command {
	var f connFlags
	cmd := &cobra.Command{Use: use, Short: "List the workspace's triggers", Args: cobra.NoArgs}
	cmd.RunE = runE("triggers", func(ctx context.Context, _ []string) error {
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		ts, err := cl.Triggers(ctx)
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, api.TriggerList{Triggers: ts})
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tPROVIDER\tEVENT\tREF\tHOOK\tAGE")
		now := time.Now()
		for _, t := range ts {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.Name, t.Provider, cmp.Or(t.Filter.Event, "*"), cmp.Or(t.Filter.Ref, "*"), t.HookURL, age(now, t.CreatedAt))
		}
		return tw.Flush()
	})
	c.addConnFlags(cmd, &f)
	return cmd
}

func (c *cli) triggersGetCmd() *cobra.Command {
	var f connFlags
	cmd := &cobra.Command{Use: "get NAME", Short: "Show a trigger: its hook URL, filter and job template", Args: cobra.ExactArgs(1)}
	cmd.RunE = runE("triggers get", func(ctx context.Context, args []string) error {
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		t, err := cl.Trigger(ctx, args[0])
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, t)
		}
		return writeTrigger(c.stdout, t)
	})
	c.addConnFlags(cmd, &f)
	return cmd
}

func writeTrigger(w io.Writer, t *api.Trigger) error {
	return writeFields(w, [][2]string{
		{"name", t.Name},
		{"id", t.ID},
		{"provider", t.Provider},
		{"hook url", t.HookURL},
		{"event", cmp.Or(t.Filter.Event, "*")},
		{"ref", cmp.Or(t.Filter.Ref, "*")},
		{"image", t.Job.Image},
		{"command", shellJoin(t.Job.Command)},
		{"created", formatTime(&t.CreatedAt)},
		{"updated", formatTime(t.UpdatedAt)},
		{"old secret until", formatTime(t.PreviousSecretUntil)},
	})
}

// readTriggerSecret reads a signing secret from a file, "-" being stdin,
// less one trailing newline; it is never taken on the command line, where
// ps and shell history would keep it.
func readTriggerSecret(name string, stdin io.Reader) (string, error) {
	var (
		b   []byte
		err error
	)
	if name == "-" {
		b, err = io.ReadAll(stdin)
	} else {
		b, err = os.ReadFile(name)
	}
	if err != nil {
		return "", fmt.Errorf("read signing secret: %w", err)
	}
	s := strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
	if s == "" {
		return "", errors.New("the signing secret is empty")
	}
	return s, nil
}

func (c *cli) triggersCreateCmd() *cobra.Command {
	var (
		f          connFlags
		req        client.TriggerRequest
		secretFile string
		file       string
	)
	cmd := &cobra.Command{
		Use:   "create NAME --provider github|standard --secret-file FILE -f JOB.yaml",
		Short: "Create a webhook trigger: each accepted delivery submits the job template",
		Long: `Create a webhook trigger. The job template (-f, YAML or JSON as for
jobgate submit; its env and command may use {{ .payload... }} templates) is
submitted for each signed delivery to the trigger's hook URL that passes the
filter (--event, --ref). The signing secret is read from --secret-file
(- for stdin), never from the command line.`,
		Args: cobra.ExactArgs(1),
	}
	cmd.RunE = runE("triggers create", func(ctx context.Context, args []string) error {
		spec, err := readSpec(file, cmd.InOrStdin())
		if err != nil {
			return err
		}
		if secretFile == "-" && file == "-" {
			return errors.New("--secret-file and -f cannot both read stdin")
		}
		if req.Secret, err = readTriggerSecret(secretFile, cmd.InOrStdin()); err != nil {
			return err
		}
		req.Name, req.Job = args[0], spec
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		t, err := cl.CreateTrigger(ctx, req)
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, t)
		}
		_, err = fmt.Fprintf(c.stdout, "created trigger %s: deliveries go to %s\n", t.Name, t.HookURL)
		return err
	})
	fl := cmd.Flags()
	fl.StringVar(&req.Provider, "provider", "", "github or standard (Standard Webhooks)")
	fl.StringVar(&secretFile, "secret-file", "", "file holding the signing secret; - for stdin")
	fl.StringVarP(&file, "file", "f", "", "job template file, YAML or JSON; - for stdin")
	fl.StringVar(&req.Filter.Event, "event", "", "act only on this event (e.g. push; default: any)")
	fl.StringVar(&req.Filter.Ref, "ref", "", "act only on this ref (e.g. refs/heads/main; default: any)")
	for _, name := range []string{"provider", "secret-file", "file"} {
		_ = cmd.MarkFlagRequired(name)
	}
	c.addConnFlags(cmd, &f)
	return cmd
}

func (c *cli) triggersUpdateCmd() *cobra.Command {
	var (
		f          connFlags
		filter     api.TriggerFilter
		secretFile string
		grace      int
		file       string
	)
	cmd := &cobra.Command{
		Use:   "update NAME [--event E] [--ref R] [-f JOB.yaml] [--secret-file FILE]",
		Short: "Change a trigger: only what is given changes; its hook URL stays",
		Long: `Change a trigger's filter, job template or signing secret; what is not
given stays. A new secret (--secret-file) is accepted at once, and the one
it replaces for --secret-grace-seconds more (default a day).`,
		Args: cobra.ExactArgs(1),
	}
	cmd.RunE = runE("triggers update", func(ctx context.Context, args []string) error {
		fl := cmd.Flags()
		var p api.TriggerPatch
		if fl.Changed("file") {
			spec, err := readSpec(file, cmd.InOrStdin())
			if err != nil {
				return err
			}
			p.Job = &spec
		}
		if fl.Changed("secret-file") {
			if secretFile == "-" && file == "-" {
				return errors.New("--secret-file and -f cannot both read stdin")
			}
			s, err := readTriggerSecret(secretFile, cmd.InOrStdin())
			if err != nil {
				return err
			}
			p.Secret = s
		}
		if fl.Changed("secret-grace-seconds") {
			if p.Secret == "" {
				return errors.New("--secret-grace-seconds goes with --secret-file")
			}
			p.SecretGraceSeconds = &grace
		}
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		if fl.Changed("event") || fl.Changed("ref") {
			// The API replaces the filter whole: keep the half not given.
			cur, err := cl.Trigger(ctx, args[0])
			if err != nil {
				return err
			}
			nf := cur.Filter
			if fl.Changed("event") {
				nf.Event = filter.Event
			}
			if fl.Changed("ref") {
				nf.Ref = filter.Ref
			}
			p.Filter = &nf
		}
		if p.Filter == nil && p.Job == nil && p.Secret == "" {
			return errors.New("nothing to change: give --event, --ref, -f or --secret-file")
		}
		t, err := cl.UpdateTrigger(ctx, args[0], p)
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, t)
		}
		_, err = fmt.Fprintf(c.stdout, "updated trigger %s\n", t.Name)
		return err
	})
	fl := cmd.Flags()
	fl.StringVar(&filter.Event, "event", "", "act only on this event (\"\": any)")
	fl.StringVar(&filter.Ref, "ref", "", "act only on this ref (\"\": any)")
	fl.StringVarP(&file, "file", "f", "", "new job template file, YAML or JSON; - for stdin")
	fl.StringVar(&secretFile, "secret-file", "", "file holding the new signing secret; - for stdin")
	fl.IntVar(&grace, "secret-grace-seconds", 0, "how long the replaced secret stays valid (default 86400; 0 ends it now)")
	c.addConnFlags(cmd, &f)
	return cmd
}

func (c *cli) triggersDeleteCmd() *cobra.Command {
	var f connFlags
	cmd := &cobra.Command{Use: "delete NAME", Short: "Delete a trigger: deliveries to its hook URL are refused from now on", Args: cobra.ExactArgs(1)}
	cmd.RunE = runE("triggers delete", func(ctx context.Context, args []string) error {
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		if err := cl.DeleteTrigger(ctx, args[0]); err != nil {
			return err
		}
		_, err = fmt.Fprintf(c.stdout, "deleted trigger %s\n", args[0])
		return err
	})
	c.addConnFlags(cmd, &f)
	return cmd
}

func (c *cli) triggersDeliveriesCmd() *cobra.Command {
	var f connFlags
	cmd := &cobra.Command{Use: "deliveries NAME", Short: "List the deliveries a trigger received and what came of each, newest first", Args: cobra.ExactArgs(1)}
	cmd.RunE = runE("triggers deliveries", func(ctx context.Context, args []string) error {
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		ds, err := cl.TriggerDeliveries(ctx, args[0])
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, api.DeliveryList{Deliveries: ds})
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tRECEIVED\tEVENT\tOUTCOME\tJOB\tREASON")
		for _, d := range ds {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, formatTime(&d.ReceivedAt), cmp.Or(d.Event, "-"), d.Outcome, cmp.Or(d.JobID, "-"), cmp.Or(d.Reason, "-"))
		}
		return tw.Flush()
	})
	c.addConnFlags(cmd, &f)
	return cmd
}
