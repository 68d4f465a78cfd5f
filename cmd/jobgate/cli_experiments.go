package main

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// experimentsCmd is `jobgate experiments [NAME]`: the workspace's
// experiments, or one experiment's jobs, best first with --sort.
func (c *cli) experimentsCmd() *cobra.Command {
	var (
		f      connFlags
		sortBy string
		limit  int
	)
	cmd := &cobra.Command{
		Use:   "experiments [NAME]",
		Short: "List experiments, or compare the jobs of one",
		Long: `Without NAME, list the workspace's experiments: job count and last activity,
most recently active first.

With NAME, list that experiment's jobs with their status and the last value
of each metric, newest first; --sort orders them by a metric instead, with a
leading "-" for descending: "jobgate experiments mnist --sort -accuracy" puts
the most accurate job first. Jobs without that metric come last.`,
		Args: cobra.MaximumNArgs(1),
	}
	cmd.RunE = runE("experiments", func(ctx context.Context, args []string) error {
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		if len(args) == 0 {
			if sortBy != "" {
				return fmt.Errorf("--sort needs an experiment NAME")
			}
			exps, err := cl.Experiments(ctx)
			if err != nil {
				return err
			}
			if f.json {
				return writeJSON(c.stdout, map[string]any{"experiments": exps})
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "EXPERIMENT\tJOBS\tLAST ACTIVITY")
			for _, e := range exps {
				fmt.Fprintf(tw, "%s\t%d\t%s\n", e.Name, e.JobCount, formatTime(&e.LastActivity))
			}
			return tw.Flush()
		}
		jobs, err := cl.ExperimentJobs(ctx, args[0], sortBy, limit)
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, map[string]any{"experiment": args[0], "jobs": jobs})
		}
		// The sort metric gets its own column; the others follow as k=v.
		metric := strings.TrimPrefix(sortBy, "-")
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		header := "JOB\tNAME\tSTATUS"
		if metric != "" {
			header += "\t" + strings.ToUpper(metric)
		}
		fmt.Fprintln(tw, header+"\tMETRICS")
		for _, j := range jobs {
			row := fmt.Sprintf("%s\t%s\t%s", j.ID, dash(j.Name), j.Status)
			rest := maps.Clone(j.Metrics)
			if metric != "" {
				v, ok := rest[metric]
				delete(rest, metric)
				row += "\t" + map[bool]string{true: formatFloat(v), false: "-"}[ok]
			}
			fmt.Fprintf(tw, "%s\t%s\n", row, dash(formatLastMetrics(rest)))
		}
		return tw.Flush()
	})
	fl := cmd.Flags()
	fl.StringVar(&sortBy, "sort", "", `order an experiment's jobs by this metric ("-accuracy": highest first)`)
	fl.IntVar(&limit, "limit", 0, "at most this many jobs (server default 100, at most 1000)")
	c.addConnFlags(cmd, &f)
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// formatKV is "a=1 b=2", keys sorted.
func formatKV(m map[string]string) string {
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(keys))
	for i, k := range keys {
		v := m[k]
		if strings.ContainsAny(v, " \t\n") || v == "" {
			v = strconv.Quote(v)
		}
		parts[i] = k + "=" + v
	}
	return strings.Join(parts, " ")
}
