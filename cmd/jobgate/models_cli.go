package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/jobgate/jobgate/api"
)

// modelsCmd is `jobgate models` (list) with `models register`, `list`,
// `get`, `alias`, `download` and `delete`.
func (c *cli) modelsCmd() *cobra.Command {
	cmd := c.modelsListCmd("models")
	cmd.Short = "List the workspace's models; register, get, alias, download or delete one"
	cmd.Long = `The model registry: a version of a model is a file or folder of a
succeeded job's outputs, copied and checksummed when it is registered.
A version is named NAME:VERSION (iris:2) or NAME@ALIAS (iris@production).`
	cmd.AddCommand(c.modelsRegisterCmd(), c.modelsListCmd("list"), c.modelsGetCmd(), c.modelsAliasCmd(), c.modelsDownloadCmd(), c.modelsDeleteCmd())
	return cmd
}

func (c *cli) modelsListCmd(use string) *cobra.Command {
	var f connFlags
	cmd := &cobra.Command{Use: use, Short: "List the workspace's models", Args: cobra.NoArgs}
	cmd.RunE = runE("models", func(ctx context.Context, _ []string) error {
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		ms, err := cl.Models(ctx)
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, api.ModelList{Models: ms})
		}
		if len(ms) == 0 {
			fmt.Fprintln(c.stderr, "no models (jobgate models register NAME --job ID --path PATH registers one)")
			return nil
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tLATEST\tVERSIONS\tALIASES\tCREATED")
		for _, m := range ms {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", m.Name, m.LatestVersion, len(m.Versions), aliasList(m.Aliases), m.CreatedAt.Local().Format(time.DateTime))
		}
		return tw.Flush()
	})
	c.addConnFlags(cmd, &f)
	return cmd
}

// aliasList is "production=2,staging=1", sorted by alias.
func aliasList(aliases map[string]int) string {
	var out []string
	for _, a := range slices.Sorted(maps.Keys(aliases)) {
		out = append(out, a+"="+strconv.Itoa(aliases[a]))
	}
	return strings.Join(out, ",")
}

func (c *cli) modelsRegisterCmd() *cobra.Command {
	var (
		f         connFlags
		job, path string
	)
	cmd := &cobra.Command{
		Use:   "register NAME --job ID --path PATH",
		Short: "Register a file or folder of a succeeded job's outputs as the next version of model NAME",
		Args:  cobra.ExactArgs(1),
	}
	cmd.RunE = runE("models register", func(ctx context.Context, args []string) error {
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		mv, err := cl.RegisterModel(ctx, args[0], job, path)
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, mv)
		}
		_, err = fmt.Fprintf(c.stdout, "registered %s:%d (%s, %d bytes, sha256 %s) from job %s\n", mv.Name, mv.Version, mv.Kind, mv.Size, mv.SHA256, mv.SourceJob)
		return err
	})
	c.addConnFlags(cmd, &f)
	cmd.Flags().StringVar(&job, "job", "", "the succeeded job whose outputs hold the model (required)")
	cmd.Flags().StringVar(&path, "path", "", "the file or folder in the job's outputs, e.g. model.json (required)")
	_ = cmd.MarkFlagRequired("job")
	_ = cmd.MarkFlagRequired("path")
	return cmd
}

func (c *cli) modelsGetCmd() *cobra.Command {
	var f connFlags
	cmd := &cobra.Command{
		Use:   "get NAME | NAME:VERSION | NAME@ALIAS",
		Short: "Show a model's versions and aliases, or one version and its lineage",
		Args:  cobra.ExactArgs(1),
	}
	cmd.RunE = runE("models get", func(ctx context.Context, args []string) error {
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		if !strings.ContainsAny(args[0], ":@") {
			m, err := cl.Model(ctx, args[0])
			if err != nil {
				return err
			}
			if f.json {
				return writeJSON(c.stdout, m)
			}
			return c.printModel(m)
		}
		mv, err := cl.ModelVersion(ctx, args[0])
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, mv)
		}
		return c.printModelVersion(mv)
	})
	c.addConnFlags(cmd, &f)
	return cmd
}

func (c *cli) printModel(m *api.Model) error {
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tKIND\tSIZE\tSHA256\tJOB\tALIASES\tCREATED")
	for _, v := range m.Versions {
		fmt.Fprintf(tw, "%s:%d\t%s\t%d\t%.12s\t%s\t%s\t%s\n", v.Name, v.Version, v.Kind, v.Size, v.SHA256, v.SourceJob,
			strings.Join(v.Aliases, ","), v.CreatedAt.Local().Format(time.DateTime))
	}
	return tw.Flush()
}

func (c *cli) printModelVersion(v *api.ModelVersion) error {
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	row("model", fmt.Sprintf("%s:%d", v.Name, v.Version))
	row("aliases", strings.Join(v.Aliases, ", "))
	row("kind", string(v.Kind))
	row("size", strconv.FormatInt(v.Size, 10))
	row("sha256", v.SHA256)
	row("source", v.SourceJob+" "+v.SourcePath)
	row("experiment", v.Experiment)
	for _, k := range slices.Sorted(maps.Keys(v.Params)) {
		row("param "+k, v.Params[k])
	}
	for _, k := range slices.Sorted(maps.Keys(v.Metrics)) {
		row("metric "+k, strconv.FormatFloat(v.Metrics[k], 'g', -1, 64))
	}
	for _, file := range v.Files {
		row("file", fmt.Sprintf("%s (%d bytes)", file.Path, file.Size))
	}
	row("created", v.CreatedAt.Local().Format(time.DateTime)+" by "+v.CreatedBy)
	return tw.Flush()
}

func (c *cli) modelsAliasCmd() *cobra.Command {
	var f connFlags
	cmd := &cobra.Command{
		Use:   "alias NAME ALIAS VERSION",
		Short: "Point alias ALIAS of model NAME at VERSION (moving it if it named another)",
		Args:  cobra.ExactArgs(3),
	}
	cmd.RunE = runE("models alias", func(ctx context.Context, args []string) error {
		v, err := strconv.Atoi(args[2])
		if err != nil || v < 1 {
			return fmt.Errorf("version %q: a version number, from 1", args[2])
		}
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		a, err := cl.SetModelAlias(ctx, args[0], args[1], v)
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, a)
		}
		_, err = fmt.Fprintf(c.stdout, "%s@%s -> %s:%d\n", a.Name, a.Alias, a.Name, a.Version)
		return err
	})
	c.addConnFlags(cmd, &f)
	return cmd
}

func (c *cli) modelsDeleteCmd() *cobra.Command {
	var f connFlags
	cmd := &cobra.Command{
		Use:   "delete NAME | NAME:VERSION",
		Short: "Delete a version, or a model with all its versions (refused while a deployment or batch uses one)",
		Long: `Delete version NAME:VERSION with its files and the aliases naming it, or
model NAME with every version. A version in use by a deployment or a
batch is refused, and then nothing is deleted. A version number is never
given out again, not even to a model made again under the same name.`,
		Args: cobra.ExactArgs(1),
	}
	cmd.RunE = runE("models delete", func(ctx context.Context, args []string) error {
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		what := "model " + args[0]
		if strings.ContainsAny(args[0], ":@") {
			ref, perr := api.ParseModelRef(args[0])
			if perr != nil {
				return perr
			}
			if ref.Alias != "" {
				return fmt.Errorf("model %q: delete a version by its number (an alias moves): NAME:VERSION", args[0])
			}
			what = "model version " + ref.String()
			err = cl.DeleteModelVersion(ctx, ref.Name, ref.Version)
		} else {
			err = cl.DeleteModel(ctx, args[0])
		}
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, map[string]any{"deleted": args[0]})
		}
		_, err = fmt.Fprintf(c.stdout, "deleted %s\n", what)
		return err
	})
	c.addConnFlags(cmd, &f)
	return cmd
}

func (c *cli) modelsDownloadCmd() *cobra.Command {
	var (
		f   connFlags
		out string
	)
	cmd := &cobra.Command{
		Use:   "download NAME:VERSION | NAME@ALIAS",
		Short: "Write a version's bytes to stdout or FILE (-o): a file as it is, a folder as a tar",
		Args:  cobra.ExactArgs(1),
	}
	cmd.RunE = runE("models download", func(ctx context.Context, args []string) error {
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		body, err := cl.DownloadModel(ctx, args[0])
		if err != nil {
			return err
		}
		defer body.Close()
		if out == "" || out == "-" {
			_, err = io.Copy(c.stdout, body)
			return err
		}
		return writeFileAtomic(out, body)
	})
	c.addConnFlags(cmd, &f)
	cmd.Flags().StringVarP(&out, "output", "o", "", "write to FILE instead of stdout")
	return cmd
}
