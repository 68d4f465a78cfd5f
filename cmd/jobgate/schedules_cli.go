package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/client"
)

// schedulesCmd is `jobgate schedules` (list) with list, get, create,
// update, delete, pause, resume, run and history.
func (c *cli) schedulesCmd() *cobra.Command {
	cmd := c.schedulesListCmd("schedules")
	cmd.Short = "List the workspace's cron schedules; create, change, pause, run or delete one"
	cmd.AddCommand(c.schedulesListCmd("list"), c.schedulesGetCmd(), c.schedulesCreateCmd(), c.schedulesUpdateCmd(),
		c.schedulesDeleteCmd(), c.schedulesPauseCmd(true), c.schedulesPauseCmd(false), c.schedulesRunCmd(), c.schedulesHistoryCmd())
	return cmd
}

func (c *cli) schedulesListCmd(use string) *cobra.Command {
	var f connFlags
	cmd := &cobra.Command{Use: use, Short: "List the workspace's schedules", Args: cobra.NoArgs}
	cmd.RunE = runE("schedules", func(ctx context.Context, _ []string) error {
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		ss, err := cl.Schedules(ctx)
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, api.ScheduleList{Schedules: ss})
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tCRON\tTIMEZONE\tPOLICY\tPAUSED\tNEXT\tLAST JOB")
		for _, s := range ss {
			next := "-"
			if len(s.Next) > 0 {
				next = formatTime(&s.Next[0])
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%t\t%s\t%s\n", s.Name, s.Cron, s.Timezone, s.ConcurrencyPolicy, s.Paused, next, cmp.Or(s.LastJobID, "-"))
		}
		return tw.Flush()
	})
	c.addConnFlags(cmd, &f)
	return cmd
}

func (c *cli) schedulesGetCmd() *cobra.Command {
	var f connFlags
	cmd := &cobra.Command{Use: "get NAME", Short: "Show a schedule: cron, next fire times, last job, job template", Args: cobra.ExactArgs(1)}
	cmd.RunE = runE("schedules get", func(ctx context.Context, args []string) error {
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		s, err := cl.Schedule(ctx, args[0])
		if err != nil {
			return err
		}
		return c.printSchedule(&f, s)
	})
	c.addConnFlags(cmd, &f)
	return cmd
}

func (c *cli) printSchedule(f *connFlags, s *api.Schedule) error {
	if f.json {
		return writeJSON(c.stdout, s)
	}
	return writeSchedule(c.stdout, s)
}

func writeSchedule(w io.Writer, s *api.Schedule) error {
	rows := [][2]string{
		{"name", s.Name},
		{"cron", s.Cron},
		{"timezone", s.Timezone},
		{"concurrency policy", s.ConcurrencyPolicy},
		{"starting deadline", strconv.Itoa(s.StartingDeadlineSeconds) + "s"},
		{"paused", strconv.FormatBool(s.Paused)},
	}
	for i := range s.Next {
		rows = append(rows, [2]string{"next", s.Next[i].Format(time.RFC3339)})
	}
	rows = append(rows, [][2]string{
		{"last scheduled", formatTime(s.LastScheduledAt)},
		{"last fired", formatTime(s.LastFiredAt)},
		{"last job", s.LastJobID},
		{"image", s.Job.Image},
		{"command", shellJoin(s.Job.Command)},
		{"created", formatTime(&s.CreatedAt)},
		{"created by", s.CreatedBy},
	}...)
	return writeFields(w, rows)
}

func (c *cli) schedulesCreateCmd() *cobra.Command {
	var (
		f    connFlags
		req  client.ScheduleRequest
		file string
	)
	cmd := &cobra.Command{
		Use:   "create NAME --cron EXPR -f JOB.yaml",
		Short: "Create a schedule that submits the job template at each tick",
		Long: `Create a cron schedule. --cron takes 5 fields ("0 2 * * *"), 6 with seconds
first, or @hourly, @daily, @every 6h; --timezone an IANA zone (default UTC).
-f is the job spec each tick submits, YAML or JSON as for jobgate submit.
--concurrency-policy: Allow (default), Forbid (skip a tick while the last job
runs) or Replace (cancel it).`,
		Args: cobra.ExactArgs(1),
	}
	cmd.RunE = runE("schedules create", func(ctx context.Context, args []string) error {
		spec, err := readSpec(file, cmd.InOrStdin())
		if err != nil {
			return err
		}
		req.Name, req.Job = args[0], spec
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		s, err := cl.CreateSchedule(ctx, req)
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, s)
		}
		next := "never (paused)"
		if len(s.Next) > 0 {
			next = s.Next[0].Format(time.RFC3339)
		}
		_, err = fmt.Fprintf(c.stdout, "created schedule %s (%s %s); next run %s\n", s.Name, s.Cron, s.Timezone, next)
		return err
	})
	fl := cmd.Flags()
	fl.StringVar(&req.Cron, "cron", "", `when to fire: "0 2 * * *", "@hourly", "@every 6h"`)
	fl.StringVar(&req.Timezone, "timezone", "", "IANA time zone of the cron expression (default UTC)")
	fl.StringVar(&req.ConcurrencyPolicy, "concurrency-policy", "", "Allow, Forbid or Replace (default Allow)")
	fl.IntVar(&req.StartingDeadlineSeconds, "starting-deadline-seconds", 0, "skip a tick missed by more than this (0: no deadline)")
	fl.StringVarP(&file, "file", "f", "", "job spec file, YAML or JSON; - for stdin")
	_ = cmd.MarkFlagRequired("cron")
	_ = cmd.MarkFlagRequired("file")
	c.addConnFlags(cmd, &f)
	return cmd
}

func (c *cli) schedulesUpdateCmd() *cobra.Command {
	var (
		f        connFlags
		cron, tz string
		policy   string
		deadline int
		file     string
	)
	cmd := &cobra.Command{
		Use:   "update NAME [--cron EXPR] [--timezone TZ] [--concurrency-policy P] [--starting-deadline-seconds N] [-f JOB.yaml]",
		Short: "Change a schedule: only what is given changes; a new cron takes effect from the next tick",
		Args:  cobra.ExactArgs(1),
	}
	cmd.RunE = runE("schedules update", func(ctx context.Context, args []string) error {
		fl := cmd.Flags()
		var p api.SchedulePatch
		if fl.Changed("cron") {
			p.Cron = &cron
		}
		if fl.Changed("timezone") {
			p.Timezone = &tz
		}
		if fl.Changed("concurrency-policy") {
			p.ConcurrencyPolicy = &policy
		}
		if fl.Changed("starting-deadline-seconds") {
			p.StartingDeadlineSeconds = &deadline
		}
		if fl.Changed("file") {
			spec, err := readSpec(file, cmd.InOrStdin())
			if err != nil {
				return err
			}
			p.Job = &spec
		}
		if p == (api.SchedulePatch{}) {
			return errors.New("nothing to change: give --cron, --timezone, --concurrency-policy, --starting-deadline-seconds or -f")
		}
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		s, err := cl.UpdateSchedule(ctx, args[0], p)
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, s)
		}
		_, err = fmt.Fprintf(c.stdout, "updated schedule %s (%s %s)\n", s.Name, s.Cron, s.Timezone)
		return err
	})
	fl := cmd.Flags()
	fl.StringVar(&cron, "cron", "", "new cron expression")
	fl.StringVar(&tz, "timezone", "", "new IANA time zone")
	fl.StringVar(&policy, "concurrency-policy", "", "Allow, Forbid or Replace")
	fl.IntVar(&deadline, "starting-deadline-seconds", 0, "skip a tick missed by more than this (0: no deadline)")
	fl.StringVarP(&file, "file", "f", "", "new job spec file, YAML or JSON; - for stdin")
	c.addConnFlags(cmd, &f)
	return cmd
}

func (c *cli) schedulesDeleteCmd() *cobra.Command {
	var f connFlags
	cmd := &cobra.Command{Use: "delete NAME", Short: "Delete a schedule (the jobs it started stay)", Args: cobra.ExactArgs(1)}
	cmd.RunE = runE("schedules delete", func(ctx context.Context, args []string) error {
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		if err := cl.DeleteSchedule(ctx, args[0]); err != nil {
			return err
		}
		_, err = fmt.Fprintf(c.stdout, "deleted schedule %s\n", args[0])
		return err
	})
	c.addConnFlags(cmd, &f)
	return cmd
}

// schedulesPauseCmd is `schedules pause NAME`, or with pause false
// `schedules resume NAME`.
func (c *cli) schedulesPauseCmd(pause bool) *cobra.Command {
	var f connFlags
	use, short, done := "resume NAME", "Resume a paused schedule from its next tick", "resumed"
	if pause {
		use, short, done = "pause NAME", "Pause a schedule: its ticks do not fire until it is resumed", "paused"
	}
	cmd := &cobra.Command{Use: use, Short: short, Args: cobra.ExactArgs(1)}
	cmd.RunE = runE("schedules "+cmd.Name(), func(ctx context.Context, args []string) error {
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		call := cl.ResumeSchedule
		if pause {
			call = cl.PauseSchedule
		}
		s, err := call(ctx, args[0])
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, s)
		}
		_, err = fmt.Fprintf(c.stdout, "%s schedule %s\n", done, s.Name)
		return err
	})
	c.addConnFlags(cmd, &f)
	return cmd
}

func (c *cli) schedulesRunCmd() *cobra.Command {
	var f connFlags
	cmd := &cobra.Command{Use: "run NAME", Short: "Fire a schedule now, paused or not, and print the job it started", Args: cobra.ExactArgs(1)}
	cmd.RunE = runE("schedules run", func(ctx context.Context, args []string) error {
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		job, err := cl.RunSchedule(ctx, args[0])
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, job)
		}
		_, err = fmt.Fprintf(c.stdout, "submitted job %s (%s)\n", job.ID, job.Status)
		return err
	})
	c.addConnFlags(cmd, &f)
	return cmd
}

func (c *cli) schedulesHistoryCmd() *cobra.Command {
	var f connFlags
	cmd := &cobra.Command{Use: "history NAME", Short: "List a schedule's recent firings, newest first", Args: cobra.ExactArgs(1)}
	cmd.RunE = runE("schedules history", func(ctx context.Context, args []string) error {
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		h, err := cl.ScheduleHistory(ctx, args[0])
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, api.ScheduleHistory{History: h})
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "SCHEDULED\tFIRED\tJOB\tSKIPPED\tMANUAL")
		for _, r := range h {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%t\n", formatTime(&r.ScheduledAt), cmp.Or(formatTime(r.FiredAt), "-"), cmp.Or(r.JobID, "-"), cmp.Or(r.SkippedReason, "-"), r.Manual)
		}
		return tw.Flush()
	})
	c.addConnFlags(cmd, &f)
	return cmd
}

// queueCmd is `jobgate queue`: the waiting jobs in the scheduler's order.
func (c *cli) queueCmd() *cobra.Command {
	var (
		f     connFlags
		limit int
	)
	cmd := &cobra.Command{Use: "queue", Short: "List the waiting jobs in the order the scheduler considers them, and why each waits", Args: cobra.NoArgs}
	cmd.RunE = runE("queue", func(ctx context.Context, _ []string) error {
		if limit < 0 {
			return fmt.Errorf("--limit must be >= 0, got %d", limit)
		}
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		q, err := cl.Queue(ctx, limit)
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, q)
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "POS\tID\tNAME\tWORKSPACE\tPRIORITY\tGPUS\tAGE\tWAITING FOR")
		now := time.Now()
		for _, j := range q.Pending {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%d\t%s\t%s\n", j.Position, j.ID, cmp.Or(j.Name, "-"), j.Workspace, cmp.Or(string(j.Priority), "-"), j.GPUs,
				age(now, j.CreatedAt), cmp.Or(j.Reason, j.ReasonCode, "-"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if q.Total > len(q.Pending) {
			fmt.Fprintf(c.stderr, "%d of %d waiting jobs shown (--limit shows more)\n", len(q.Pending), q.Total)
		}
		return nil
	})
	cmd.Flags().IntVar(&limit, "limit", 0, "most jobs to show (0: the gateway's default, 100)")
	c.addConnFlags(cmd, &f)
	return cmd
}
