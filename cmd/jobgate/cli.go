package main

// The client half of the jobgate binary: submit, get, list, logs, cancel,
// metrics and artifacts, thin commands over the client package. Everything a script needs
// is stable: human output is line-oriented, --json prints the API's own JSON,
// and `submit --follow` exits with the job's own exit code.

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/client"
)

const (
	defaultGatewayURL = "http://127.0.0.1:8080"
	// devTokenFile is where `jobgate dev` saves the token it generates, relative
	// to the directory it runs in; the CLI falls back to it so a laptop user
	// needs no configuration.
	devTokenFile = ".jobgate/token"

	// exitInterrupted is what a shell reports for a process stopped by SIGINT,
	// and what `submit --follow` exits with when the job was canceled.
	exitInterrupted = 130
)

// exitError ends the process with a specific exit status. main prints msg as
// it is, without the "error: " prefix, when it is not empty: for `submit
// --follow` it is the job's one-line summary, which is a result, not an error.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// ExitCode is the status the process should exit with.
func (e *exitError) ExitCode() int { return e.code }

// cli holds what every command writes to and reads its defaults from.
type cli struct {
	env            func(string) string
	stdout, stderr io.Writer
}

// connFlags are the flags every command takes: where the gateway is, how to
// authenticate, and whether to print the API's JSON instead of text.
type connFlags struct {
	url     string
	token   string
	profile string
	json    bool
	// flags tells a flag given on the command line from one bindEnv set
	// from the environment.
	flags *pflag.FlagSet
}

// cliCommands returns the CLI commands (submit, get, list, logs, cancel,
// metrics, artifacts) for main to add to the root command. Defaults come from env (JOBGATE_URL,
// JOBGATE_TOKEN); output goes to stdout and stderr. The commands print no
// errors themselves: main prints `error: <err>`, or for an error with an
// ExitCode method its bare message, and exits with that code.
func cliCommands(env func(string) string, stdout, stderr io.Writer) []*cobra.Command {
	if env == nil {
		env = func(string) string { return "" }
	}
	c := &cli{env: env, stdout: stdout, stderr: stderr}
	cmds := []*cobra.Command{c.submitCmd(), c.getCmd(), c.listCmd(), c.logsCmd(), c.cancelCmd(), c.metricsCmd(), c.artifactsCmd(), c.experimentsCmd()}
	cmds = append(cmds, c.datastoresCmd(), c.modelsCmd(), c.deployCmd(), c.deploymentsCmd(), c.batchCmd(), c.sweepCmd())
	cmds = append(cmds, c.execCmd())
	cmds = append(cmds, c.scoreCmd())
	cmds = append(cmds, c.workspacesCmd(), c.tokensCmd(), c.secretsCmd(), c.auditCmd(), c.triggersCmd(), c.schedulesCmd(), c.queueCmd())
	cmds = append(cmds, c.configCmd(), c.versionCmd())
	c.addCompletions(cmds)
	for _, cmd := range cmds {
		cmd.SetOut(stdout)
		cmd.SetErr(stderr)
		cmd.SilenceErrors = true
	}
	return cmds
}

func (c *cli) addConnFlags(cmd *cobra.Command, f *connFlags) {
	fl := cmd.Flags()
	f.flags = fl
	fl.StringVar(&f.url, "url", "", "gateway base URL (default: env JOBGATE_URL, else the profile's, else "+defaultGatewayURL+")")
	// The token has no visible default: --help must not print a secret.
	fl.StringVar(&f.token, "token", "", "API token (default: env JOBGATE_TOKEN, else JOBGATE_JOB_TOKEN inside a job, else the profile's, else ./"+devTokenFile+")")
	fl.StringVar(&f.profile, "profile", "", "take URL and token from this profile of the config file, over JOBGATE_URL/JOBGATE_TOKEN (default: env JOBGATE_PROFILE, else current_profile, below them)")
	fl.BoolVar(&f.json, "json", false, "print the API's JSON instead of text")
}

// client builds an API client from the flags, the environment and the
// config file (connection has the order); with no token anywhere, requests
// go out without one and the gateway says 401.
func (c *cli) client(f *connFlags) (*client.Client, error) {
	url, token, err := c.connection(f)
	if err != nil {
		return nil, err
	}
	return client.New(url, token), nil
}

// runE wraps a command's work: once cobra has parsed the arguments, a failure
// is no longer a usage error, so no usage text follows it; errors get the
// command's name in front, except an exitError, whose message stands alone.
func runE(name string, fn func(ctx context.Context, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		cmd.SilenceUsage = true
		err := fn(cmd.Context(), args)
		if ee := (*exitError)(nil); err == nil || errors.As(err, &ee) {
			return err
		}
		return fmt.Errorf("%s: %w", name, err)
	}
}

func (c *cli) submitCmd() *cobra.Command {
	var (
		f       connFlags
		file    string
		follow  bool
		idemKey string
	)
	cmd := &cobra.Command{
		Use:   "submit -f FILE",
		Short: "Submit a job from a YAML or JSON spec",
		Long: `Submit a job from a YAML or JSON job spec (-f - reads standard input).
Unknown fields are an error, so a typo never silently drops a setting.

With --follow the job's log streams to stdout until the job ends, a summary
line goes to stderr, and the exit status is the job's: 0 if it succeeded, its
exit code if it failed with one, 130 if it was canceled, 1 otherwise.`,
		Args: cobra.NoArgs,
	}
	cmd.RunE = runE("submit", func(ctx context.Context, _ []string) error {
		spec, err := readSpec(file, cmd.InOrStdin())
		if err != nil {
			return err
		}
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		job, err := cl.Submit(ctx, spec, idemKey)
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, job)
		}
		if !follow {
			_, err := fmt.Fprintf(c.stdout, "submitted job %s (%s)\n", job.ID, job.Status)
			return err
		}
		// stdout carries the job's log and nothing else, so this goes to stderr.
		fmt.Fprintf(c.stderr, "submitted job %s (%s)\n", job.ID, job.Status)
		return c.follow(ctx, cl, job.ID)
	})
	fl := cmd.Flags()
	fl.StringVarP(&file, "file", "f", "", "job spec file, YAML or JSON; - for stdin")
	fl.BoolVar(&follow, "follow", false, "stream the log until the job ends and exit with its status")
	fl.StringVar(&idemKey, "idempotency-key", "", "submit at most once per key; a retry returns the first job")
	c.addConnFlags(cmd, &f)
	_ = cmd.MarkFlagRequired("file")
	// With --follow stdout is the job's log; JSON mixed into it would parse as neither.
	cmd.MarkFlagsMutuallyExclusive("json", "follow")
	return cmd
}

// follow streams a job's log to stdout until the job ends, then reports how it
// ended and turns that into the process's exit status.
func (c *cli) follow(ctx context.Context, cl *client.Client, id string) error {
	err := c.copyLogs(ctx, cl, id, true)
	if err == nil {
		// The stream ends when the job does; Wait covers a gateway that closes
		// it a moment before the record says so.
		var job *api.Job
		if job, err = cl.Wait(ctx, id); err == nil {
			return c.finish(job)
		}
	}
	if ctx.Err() != nil {
		return &exitError{code: exitInterrupted,
			msg: fmt.Sprintf("stopped following job %s; it was not canceled (jobgate cancel %s stops it)", id, id)}
	}
	return fmt.Errorf("follow job %s: %w", id, err)
}

// finish reports how a job ended, as a one-line summary on stderr, and
// returns the exit status it maps to: nil for success, else an exitError that
// carries the summary for main to print.
func (c *cli) finish(job *api.Job) error {
	code, msg := jobExit(job)
	if code == 0 {
		fmt.Fprintln(c.stderr, msg)
		return nil
	}
	return &exitError{code: code, msg: msg}
}

// jobExit maps a terminal job to an exit status and a one-line summary. A
// workload's own exit code passes through, so `jobgate submit --follow` in a
// script behaves like running the command locally.
func jobExit(job *api.Job) (int, string) {
	switch job.Status {
	case api.StatusSucceeded:
		return 0, fmt.Sprintf("job %s succeeded", job.ID)
	case api.StatusCanceled:
		return exitInterrupted, fmt.Sprintf("job %s canceled", job.ID)
	}
	msg := fmt.Sprintf("job %s %s", job.ID, job.Status)
	if job.Reason != "" {
		msg += ": " + job.Reason
	}
	code := 1
	if job.ExitCode != nil {
		msg += fmt.Sprintf(" (exit code %d)", *job.ExitCode)
		if ec := *job.ExitCode; ec >= 1 && ec <= 255 {
			code = ec
		}
	}
	return code, msg
}

func (c *cli) copyLogs(ctx context.Context, cl *client.Client, id string, follow bool) error {
	rc, err := cl.Logs(ctx, id, follow)
	if err != nil {
		return err
	}
	defer rc.Close()
	if _, err := io.Copy(c.stdout, rc); err != nil {
		return fmt.Errorf("read log: %w", err)
	}
	return nil
}

func (c *cli) getCmd() *cobra.Command {
	var f connFlags
	cmd := &cobra.Command{
		Use:   "get ID",
		Short: "Show a job",
		Args:  cobra.ExactArgs(1),
	}
	cmd.RunE = runE("get", func(ctx context.Context, args []string) error {
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		job, err := cl.Get(ctx, args[0])
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, job)
		}
		return writeJob(c.stdout, job)
	})
	c.addConnFlags(cmd, &f)
	return cmd
}

// writeJob prints a job as an aligned key/value block; empty values show as
// "-" so every line has two fields.
func writeJob(w io.Writer, j *api.Job) error {
	exit := "-"
	if j.ExitCode != nil {
		exit = strconv.Itoa(*j.ExitCode)
	}
	status := string(j.Status)
	if j.CancelRequested && !j.Status.Terminal() {
		status += " (cancel requested)"
	}
	rows := [][2]string{
		{"id", j.ID},
		{"name", j.Name},
		{"experiment", j.Experiment},
		{"status", status},
		{"reason", j.Reason},
		{"exit code", exit},
		{"attempt", strconv.Itoa(j.Attempt)},
		{"worker", j.Worker},
		{"created", formatTime(&j.CreatedAt)},
		{"started", formatTime(j.StartedAt)},
		{"finished", formatTime(j.FinishedAt)},
		{"image", j.Spec.Image},
		{"command", shellJoin(j.Spec.Command)},
	}
	if len(j.Metrics) > 0 {
		rows = append(rows, [2]string{"metrics", formatLastMetrics(j.Metrics)})
	}
	if len(j.Params) > 0 {
		rows = append(rows, [2]string{"params", formatKV(j.Params)})
	}
	if len(j.Tags) > 0 {
		rows = append(rows, [2]string{"tags", formatKV(j.Tags)})
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintf(tw, "%s:\t%s\n", r[0], cmp.Or(r[1], "-"))
	}
	return tw.Flush()
}

// formatLastMetrics is "acc=0.9 loss=0.31", names sorted.
func formatLastMetrics(m map[string]float64) string {
	names := slices.Sorted(maps.Keys(m))
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + "=" + formatFloat(m[n])
	}
	return strings.Join(parts, " ")
}

func (c *cli) listCmd() *cobra.Command {
	var (
		f    connFlags
		opts client.ListOptions
		stat string
		all  bool
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List jobs, newest first",
		Args:  cobra.NoArgs,
	}
	cmd.RunE = runE("list", func(ctx context.Context, _ []string) error {
		if stat != "" && !api.Status(stat).Valid() {
			return fmt.Errorf("unknown status %q: want queued, running, succeeded, failed or canceled", stat)
		}
		opts.Status = api.Status(stat)
		if opts.Limit < 0 {
			return fmt.Errorf("--limit must be >= 0, got %d", opts.Limit)
		}
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		list, err := fetchJobs(ctx, cl, opts, all)
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, list)
		}
		if err := writeJobTable(c.stdout, list.Jobs, time.Now()); err != nil {
			return err
		}
		if list.NextCursor != "" {
			// stderr, so the table on stdout stays a table.
			fmt.Fprintf(c.stderr, "more jobs: run again with --cursor %s, or --all for every page\n", list.NextCursor)
		}
		return nil
	})
	fl := cmd.Flags()
	fl.StringVar(&stat, "status", "", "only jobs in this state: queued, running, succeeded, failed, canceled")
	fl.StringVar(&opts.Experiment, "experiment", "", "only jobs of this experiment")
	fl.IntVar(&opts.Limit, "limit", 0, "jobs per page (0: the gateway's default)")
	fl.StringVar(&opts.Cursor, "cursor", "", "start at this page (a previous list's next cursor)")
	fl.BoolVar(&all, "all", false, "follow the cursor through every page")
	c.addConnFlags(cmd, &f)
	return cmd
}

// fetchJobs gets one page, or with all every page from opts.Cursor on,
// joined into one list with no next cursor.
func fetchJobs(ctx context.Context, cl *client.Client, opts client.ListOptions, all bool) (*api.JobList, error) {
	out := &api.JobList{Jobs: []api.Job{}}
	for {
		page, err := cl.List(ctx, opts)
		if err != nil {
			return nil, err
		}
		out.Jobs = append(out.Jobs, page.Jobs...)
		if !all || page.NextCursor == "" {
			out.NextCursor = page.NextCursor
			return out, nil
		}
		// A gateway that hands back the cursor it was given would loop forever.
		if page.NextCursor == opts.Cursor {
			return nil, fmt.Errorf("gateway returned cursor %q again; stopping", page.NextCursor)
		}
		opts.Cursor = page.NextCursor
	}
}

func writeJobTable(w io.Writer, jobs []api.Job, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tSTATUS\tEXIT\tAGE\tEXPERIMENT")
	for _, j := range jobs {
		exit := "-"
		if j.ExitCode != nil {
			exit = strconv.Itoa(*j.ExitCode)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n",
			j.ID, cmp.Or(j.Name, "-"), j.Status, exit, age(now, j.CreatedAt), cmp.Or(j.Experiment, "-"))
	}
	return tw.Flush()
}

func (c *cli) logsCmd() *cobra.Command {
	var (
		f      connFlags
		follow bool
	)
	cmd := &cobra.Command{
		Use:   "logs ID",
		Short: "Print a job's log",
		Long:  "Print a job's log, byte for byte. With --follow, keep printing until the job ends.",
		Args:  cobra.ExactArgs(1),
	}
	cmd.RunE = runE("logs", func(ctx context.Context, args []string) error {
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		err = c.copyLogs(ctx, cl, args[0], follow)
		if err != nil && follow && ctx.Err() != nil {
			// Ctrl-C is how one stops following; it is not an error worth a message.
			return &exitError{code: exitInterrupted}
		}
		return err
	})
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "stream new output until the job ends")
	c.addConnFlags(cmd, &f)
	// A log is raw bytes; --json is accepted, so scripts can pass the same
	// flags to every command, but has nothing to change and is not advertised.
	_ = cmd.Flags().MarkHidden("json")
	return cmd
}

func (c *cli) cancelCmd() *cobra.Command {
	var f connFlags
	cmd := &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a job",
		Long: `Cancel a job. A queued job is canceled at once; a running one is stopped
by its worker shortly after, and "jobgate get" shows when it has ended.`,
		Args: cobra.ExactArgs(1),
	}
	cmd.RunE = runE("cancel", func(ctx context.Context, args []string) error {
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		job, err := cl.Cancel(ctx, args[0])
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, job)
		}
		switch {
		case job.Status == api.StatusCanceled:
			_, err = fmt.Fprintf(c.stdout, "canceled job %s\n", job.ID)
		case job.Status.Terminal():
			_, err = fmt.Fprintf(c.stdout, "job %s already %s; nothing to cancel\n", job.ID, job.Status)
		default:
			_, err = fmt.Fprintf(c.stdout, "cancel requested for job %s (%s)\n", job.ID, job.Status)
		}
		return err
	})
	c.addConnFlags(cmd, &f)
	return cmd
}

func (c *cli) metricsCmd() *cobra.Command {
	var (
		f      connFlags
		names  []string
		points bool
	)
	cmd := &cobra.Command{
		Use:   "metrics ID",
		Short: "Show a job's metrics",
		Long: `Show the metrics a job reported with lines like
"::metric name=loss value=0.31 step=12" on its stdout.

By default one line per metric: the last value reported, the lowest and
highest value, the number of points and the steps they span. --points prints
every point instead (metric, step, value, time), in step order.`,
		Args: cobra.ExactArgs(1),
	}
	cmd.RunE = runE("metrics", func(ctx context.Context, args []string) error {
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		m, err := cl.Metrics(ctx, args[0], names...)
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, m)
		}
		if len(m.Metrics) == 0 {
			// stderr, so stdout stays a table (an empty one).
			fmt.Fprintf(c.stderr, "job %s has no metrics\n", args[0])
			return nil
		}
		if points {
			return writeMetricPoints(c.stdout, m)
		}
		return writeMetricSummary(c.stdout, m)
	})
	fl := cmd.Flags()
	fl.StringArrayVar(&names, "name", nil, "only this metric (repeat for more)")
	fl.BoolVar(&points, "points", false, "print every point instead of a summary per metric")
	c.addConnFlags(cmd, &f)
	return cmd
}

// writeMetricSummary prints a line per metric, names sorted. LAST is the
// value reported last, as in the job record, which is the one at the highest
// step unless the job went back to earlier steps.
func writeMetricSummary(w io.Writer, m *api.JobMetrics) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "METRIC\tLAST\tMIN\tMAX\tPOINTS\tSTEPS")
	for _, name := range slices.Sorted(maps.Keys(m.Metrics)) {
		pts := m.Metrics[name]
		if len(pts) == 0 {
			continue
		}
		last, lo, hi := pts[0], pts[0].Value, pts[0].Value
		for _, p := range pts[1:] {
			if !p.Timestamp.Before(last.Timestamp) {
				last = p
			}
			lo, hi = min(lo, p.Value), max(hi, p.Value)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d-%d\n", name, formatFloat(last.Value), formatFloat(lo), formatFloat(hi),
			len(pts), pts[0].Step, pts[len(pts)-1].Step)
	}
	return tw.Flush()
}

// writeMetricPoints prints every point, metrics by name, each in step order.
func writeMetricPoints(w io.Writer, m *api.JobMetrics) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "METRIC\tSTEP\tVALUE\tTIME")
	for _, name := range slices.Sorted(maps.Keys(m.Metrics)) {
		for _, p := range m.Metrics[name] {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", name, p.Step, formatFloat(p.Value), formatTime(&p.Timestamp))
		}
	}
	return tw.Flush()
}

// formatFloat is the shortest form that reads back as the same value.
func formatFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// readSpec reads and strictly parses a job spec file; "-" is stdin. Errors
// name the file.
func readSpec(name string, stdin io.Reader) (api.JobSpec, error) {
	return readSpecFile(name, stdin, "job spec", parseSpec)
}

// readSpecFile reads file name ("-" is stdin) and parses it with parse;
// a read error says what was read, a parse error names the file.
func readSpecFile[T any](name string, stdin io.Reader, what string, parse func([]byte) (T, error)) (T, error) {
	var (
		data []byte
		err  error
		zero T
	)
	if name == "-" {
		name = "stdin"
		data, err = io.ReadAll(stdin)
	} else {
		data, err = os.ReadFile(name)
	}
	if err != nil {
		return zero, fmt.Errorf("read %s: %w", what, err)
	}
	spec, err := parse(data)
	if err != nil {
		return zero, fmt.Errorf("%s: %w", name, err)
	}
	return spec, nil
}

// parseSpec turns YAML 1.2 or JSON into a JobSpec with the API's own
// strict decoder: any field the spec does not have is an error, so `imgae:`
// fails here instead of submitting a job with no image.
func parseSpec(data []byte) (api.JobSpec, error) {
	return api.DecodeJobSpec(data)
}

// writeJSON prints v as indented JSON, the API's own shape.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// formatTime is RFC 3339 in UTC, the same on every machine; "" for no time.
func formatTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// age is how long ago t was, in the largest whole unit: 45s, 12m, 3h, 5d.
func age(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := max(now.Sub(t), 0)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d/time.Hour))
	}
	return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
}

// shellJoin writes an argv the way a shell would need it typed, so a
// command with spaces in an argument reads unambiguously.
func shellJoin(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=:,+@%", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
