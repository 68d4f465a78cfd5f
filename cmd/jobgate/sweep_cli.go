package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/jobgate/jobgate/api"
)

// sweepCmd is `jobgate sweep` with submit, list, get, trials and cancel.
func (c *cli) sweepCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "sweep", Short: "Run a hyperparameter sweep; show its trials, or cancel it", Args: cobra.NoArgs}
	cmd.AddCommand(c.sweepSubmitCmd(), c.sweepListCmd(), c.sweepGetCmd(), c.sweepTrialsCmd(), c.sweepCancelCmd())
	return cmd
}

func (c *cli) sweepSubmitCmd() *cobra.Command {
	var f connFlags
	var file string
	cmd := &cobra.Command{Use: "submit -f FILE", Short: "Start a sweep from a sweep spec (YAML or JSON, kind: sweep)", Args: cobra.NoArgs,
		Long: `Start a hyperparameter sweep. The spec's trial is a job template whose
command and env take each parameter as {{ .params.NAME }}; search_space
maps names to distributions (choice, randint, uniform, quniform,
loguniform, qloguniform, normal, lognormal); sampling is grid or random
(with a seed); objective names the metric and its goal;
early_termination is median_stopping, bandit or truncation; limits bound
the trials in all and at once.`}
	cmd.RunE = runE("sweep submit", func(ctx context.Context, _ []string) error {
		if file == "" {
			return errors.New("-f FILE is required (a sweep spec, YAML or JSON; - for stdin)")
		}
		spec, err := readSpecFile(file, cmd.InOrStdin(), "sweep spec", api.DecodeSweepSpec)
		if err != nil {
			return err
		}
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		s, err := cl.CreateSweep(ctx, spec)
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, s)
		}
		fmt.Fprintf(c.stdout, "sweep %s: %s, %d of %d trials made (seed %d)\n", s.ID, s.Status, len(s.Trials), s.Spec.Limits.MaxTotalTrials, s.Seed)
		return nil
	})
	cmd.Flags().StringVarP(&file, "file", "f", "", "sweep spec file, YAML or JSON; - for stdin")
	c.addConnFlags(cmd, &f)
	return cmd
}

func (c *cli) sweepListCmd() *cobra.Command {
	var f connFlags
	var limit int
	var cursor string
	cmd := &cobra.Command{Use: "list", Short: "List the workspace's sweeps, newest first", Args: cobra.NoArgs}
	cmd.RunE = runE("sweep list", func(ctx context.Context, _ []string) error {
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		l, err := cl.ListSweeps(ctx, limit, cursor)
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, l)
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SWEEP\tNAME\tSTATUS\tSAMPLING\tOBJECTIVE\tTRIALS\tCREATED")
		for _, s := range l.Sweeps {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s %s\t%d/%d\t%s\n", s.ID, cmp.Or(s.Name, "-"), s.Status, s.Sampling.Type,
				s.Objective.Goal, s.Objective.Metric, s.Trials, s.MaxTotalTrials, s.CreatedAt.Format(time.RFC3339))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if l.NextCursor != "" {
			fmt.Fprintf(c.stderr, "more sweeps: run again with --cursor %s\n", l.NextCursor)
		}
		return nil
	})
	cmd.Flags().IntVar(&limit, "limit", 0, "most sweeps to show (0: the gateway's default, 50)")
	cmd.Flags().StringVar(&cursor, "cursor", "", "start at this page (a previous list's next cursor)")
	c.addConnFlags(cmd, &f)
	return cmd
}

func (c *cli) sweepGetCmd() *cobra.Command {
	var f connFlags
	cmd := &cobra.Command{Use: "get ID", Short: "Show a sweep: status, best trial so far, its trials", Args: cobra.ExactArgs(1)}
	cmd.RunE = runE("sweep get", func(ctx context.Context, args []string) error {
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		s, err := cl.Sweep(ctx, args[0])
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, s)
		}
		fmt.Fprintf(c.stdout, "sweep %s: %s (%s %s, %s sampling, seed %d)\n", s.ID, s.Status,
			s.Spec.Objective.Goal, s.Spec.Objective.Metric, s.Spec.Sampling.Type, s.Seed)
		if s.Best != nil {
			fmt.Fprintf(c.stdout, "best: trial %d (%s) %s %s = %s\n", s.Best.Index, s.Best.JobID, formatParams(s.Best.Params),
				s.Spec.Objective.Metric, strconv.FormatFloat(*s.Best.BestMetric, 'g', -1, 64))
		}
		return writeTrials(c.stdout, s.Trials)
	})
	c.addConnFlags(cmd, &f)
	return cmd
}

func (c *cli) sweepTrialsCmd() *cobra.Command {
	var f connFlags
	cmd := &cobra.Command{Use: "trials ID", Short: "List a sweep's trials, best objective first", Args: cobra.ExactArgs(1)}
	cmd.RunE = runE("sweep trials", func(ctx context.Context, args []string) error {
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		ts, err := cl.SweepTrials(ctx, args[0])
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, api.SweepTrials{Trials: ts})
		}
		return writeTrials(c.stdout, ts)
	})
	c.addConnFlags(cmd, &f)
	return cmd
}

func (c *cli) sweepCancelCmd() *cobra.Command {
	var f connFlags
	cmd := &cobra.Command{Use: "cancel ID", Short: "Cancel a sweep and every trial still running", Args: cobra.ExactArgs(1)}
	cmd.RunE = runE("sweep cancel", func(ctx context.Context, args []string) error {
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		s, err := cl.CancelSweep(ctx, args[0])
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, s)
		}
		fmt.Fprintf(c.stdout, "sweep %s: %s\n", s.ID, s.Status)
		return nil
	})
	c.addConnFlags(cmd, &f)
	return cmd
}

// writeTrials is the trials table, in the order given.
func writeTrials(w io.Writer, ts []api.SweepTrial) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TRIAL\tJOB\tSTATE\tBEST\tLAST\tSTEP\tPARAMS\tSTOPPED")
	num := func(v *float64) string {
		if v == nil {
			return "-"
		}
		return strconv.FormatFloat(*v, 'g', 6, 64)
	}
	for _, t := range ts {
		why := ""
		if t.Reason != nil && t.State.Terminal() && t.State != api.StatusSucceeded {
			why = t.Reason.String()
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", t.Index, t.JobID, t.State, num(t.BestMetric), num(t.Metric), t.Step, formatParams(t.Params), why)
	}
	return tw.Flush()
}

// formatParams is params as name=value, by name.
func formatParams(params map[string]string) string {
	names := make([]string, 0, len(params))
	for n := range params {
		names = append(names, n)
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + "=" + params[n]
	}
	return strings.Join(parts, " ")
}
