package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/client"
)

// writeFields prints key/value rows as an aligned block, like `jobgate get`;
// an empty value shows as "-".
func writeFields(w io.Writer, rows [][2]string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintf(tw, "%s:\t%s\n", r[0], cmp.Or(r[1], "-"))
	}
	return tw.Flush()
}

// quota formats a quota, 0 being no limit.
func quota(n int) string {
	if n == 0 {
		return "-"
	}
	return strconv.Itoa(n)
}

// workspacesCmd is `jobgate workspaces` (list) with list, get, create and
// update. The API has no route that deletes a workspace.
func (c *cli) workspacesCmd() *cobra.Command {
	cmd := c.workspacesListCmd("workspaces")
	cmd.Short = "List workspaces; get, create or update one"
	cmd.AddCommand(c.workspacesListCmd("list"), c.workspacesGetCmd(), c.workspacesCreateCmd(), c.workspacesUpdateCmd())
	return cmd
}

func (c *cli) workspacesListCmd(use string) *cobra.Command {
	var f connFlags
	cmd := &cobra.Command{Use: use, Short: "List the workspaces the token sees (all of them for the system admin token)", Args: cobra.NoArgs}
	cmd.RunE = runE("workspaces", func(ctx context.Context, _ []string) error {
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		ws, err := cl.Workspaces(ctx)
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, api.WorkspaceList{Workspaces: ws})
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tMAX RUNNING\tMAX GPUS\tREQ/S\tHOST PROCESS\tAGE")
		now := time.Now()
		for _, w := range ws {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%t\t%s\n", w.Name, quota(w.Quotas.MaxRunningJobs), quota(w.Quotas.MaxGPUs),
				quota(w.Quotas.RequestsPerSecond), w.AllowHostProcess, age(now, w.CreatedAt))
		}
		return tw.Flush()
	})
	c.addConnFlags(cmd, &f)
	return cmd
}

func (c *cli) workspacesGetCmd() *cobra.Command {
	var f connFlags
	cmd := &cobra.Command{Use: "get NAME", Short: "Show a workspace: quotas, image allowlist, host processes", Args: cobra.ExactArgs(1)}
	cmd.RunE = runE("workspaces get", func(ctx context.Context, args []string) error {
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		// The API lists workspaces but has no route for one.
		ws, err := cl.Workspaces(ctx)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(ws, func(w api.Workspace) bool { return w.Name == args[0] })
		if i < 0 {
			return fmt.Errorf("no workspace %q", args[0])
		}
		if f.json {
			return writeJSON(c.stdout, ws[i])
		}
		return writeWorkspace(c.stdout, &ws[i])
	})
	c.addConnFlags(cmd, &f)
	return cmd
}

func writeWorkspace(w io.Writer, ws *api.Workspace) error {
	return writeFields(w, [][2]string{
		{"name", ws.Name},
		{"max running jobs", quota(ws.Quotas.MaxRunningJobs)},
		{"max gpus", quota(ws.Quotas.MaxGPUs)},
		{"requests per second", quota(ws.Quotas.RequestsPerSecond)},
		{"image allowlist", strings.Join(ws.ImageAllowlist, " ")},
		{"allow host process", strconv.FormatBool(ws.AllowHostProcess)},
		{"created", formatTime(&ws.CreatedAt)},
	})
}

func (c *cli) workspacesCreateCmd() *cobra.Command {
	var (
		f connFlags
		w api.Workspace
	)
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a workspace (system admin token only)",
		Long: `Create a workspace. Quotas of 0 mean no limit; --image-allow (repeat it)
limits jobs to images under those prefixes ("localhost/"). Its first admin
token: jobgate tokens create NAME --workspace WS --scope admin.`,
		Args: cobra.ExactArgs(1),
	}
	cmd.RunE = runE("workspaces create", func(ctx context.Context, args []string) error {
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		w.Name = args[0]
		out, err := cl.CreateWorkspace(ctx, w)
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, out)
		}
		_, err = fmt.Fprintf(c.stdout, "created workspace %s\n", out.Name)
		return err
	})
	fl := cmd.Flags()
	fl.IntVar(&w.Quotas.MaxRunningJobs, "max-running-jobs", 0, "most jobs running at once (0: no limit)")
	fl.IntVar(&w.Quotas.MaxGPUs, "max-gpus", 0, "most GPUs in use at once (0: no limit)")
	fl.IntVar(&w.Quotas.RequestsPerSecond, "requests-per-second", 0, "API rate limit of its tokens (0: no limit)")
	fl.StringArrayVar(&w.ImageAllowlist, "image-allow", nil, "image prefix its jobs may use (repeat for more; none: any)")
	fl.BoolVar(&w.AllowHostProcess, "allow-host-process", false, "let its jobs run in mode process, on a worker's host")
	c.addConnFlags(cmd, &f)
	return cmd
}

func (c *cli) workspacesUpdateCmd() *cobra.Command {
	var (
		f     connFlags
		allow bool
	)
	cmd := &cobra.Command{
		Use:   "update NAME --allow-host-process=true|false",
		Short: "Change a workspace's system-admin settings (system admin token only)",
		Args:  cobra.ExactArgs(1),
	}
	cmd.RunE = runE("workspaces update", func(ctx context.Context, args []string) error {
		var p client.WorkspacePatch
		if cmd.Flags().Changed("allow-host-process") {
			p.AllowHostProcess = &allow
		}
		if p == (client.WorkspacePatch{}) {
			return errors.New("nothing to change: give --allow-host-process=true or =false")
		}
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		out, err := cl.UpdateWorkspace(ctx, args[0], p)
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, out)
		}
		_, err = fmt.Fprintf(c.stdout, "updated workspace %s: allow_host_process=%t\n", out.Name, out.AllowHostProcess)
		return err
	})
	cmd.Flags().BoolVar(&allow, "allow-host-process", false, "grant (true) or take back (false) mode process")
	c.addConnFlags(cmd, &f)
	return cmd
}

// tokenWorkspace is the workspace the tokens commands act on: --workspace,
// else the only one the token sees (a workspace token sees its own).
func tokenWorkspace(ctx context.Context, cl *client.Client, ws string) (string, error) {
	if ws != "" {
		return ws, nil
	}
	all, err := cl.Workspaces(ctx)
	if err != nil {
		return "", err
	}
	if len(all) != 1 {
		return "", fmt.Errorf("--workspace is required: this token sees %d workspaces", len(all))
	}
	return all[0].Name, nil
}

// tokensCmd is `jobgate tokens` (list) with list, get, create and delete.
func (c *cli) tokensCmd() *cobra.Command {
	cmd := c.tokensListCmd("tokens")
	cmd.Short = "List a workspace's API tokens; create or revoke one"
	cmd.AddCommand(c.tokensListCmd("list"), c.tokensGetCmd(), c.tokensCreateCmd(), c.tokensDeleteCmd())
	return cmd
}

func (c *cli) tokensListCmd(use string) *cobra.Command {
	var (
		f  connFlags
		ws string
	)
	cmd := &cobra.Command{Use: use, Short: "List a workspace's tokens, oldest first (never their secrets)", Args: cobra.NoArgs}
	cmd.RunE = runE("tokens", func(ctx context.Context, _ []string) error {
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		if ws, err = tokenWorkspace(ctx, cl, ws); err != nil {
			return err
		}
		ts, err := cl.Tokens(ctx, ws)
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, api.TokenList{Tokens: ts})
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tSCOPES\tAGE\tLAST USED\tEXPIRES")
		now := time.Now()
		for _, t := range ts {
			used := "-"
			if t.LastUsedAt != nil {
				used = age(now, *t.LastUsedAt) + " ago"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, joinScopes(t.Scopes), age(now, t.CreatedAt), used, cmp.Or(formatTime(t.ExpiresAt), "-"))
		}
		return tw.Flush()
	})
	cmd.Flags().StringVar(&ws, "workspace", "", "the workspace (default: the token's own)")
	c.addConnFlags(cmd, &f)
	return cmd
}

func joinScopes(s []api.Scope) string {
	parts := make([]string, len(s))
	for i, sc := range s {
		parts[i] = string(sc)
	}
	return strings.Join(parts, ",")
}

func (c *cli) tokensGetCmd() *cobra.Command {
	var (
		f  connFlags
		ws string
	)
	cmd := &cobra.Command{Use: "get ID", Short: "Show a token (never its secret)", Args: cobra.ExactArgs(1)}
	cmd.RunE = runE("tokens get", func(ctx context.Context, args []string) error {
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		if ws, err = tokenWorkspace(ctx, cl, ws); err != nil {
			return err
		}
		ts, err := cl.Tokens(ctx, ws)
		if err != nil {
			return err
		}
		i := slices.IndexFunc(ts, func(t api.Token) bool { return t.ID == args[0] })
		if i < 0 {
			return fmt.Errorf("no token %q in workspace %s", args[0], ws)
		}
		t := ts[i]
		if f.json {
			return writeJSON(c.stdout, t)
		}
		return writeFields(c.stdout, [][2]string{{"id", t.ID}, {"name", t.Name}, {"workspace", t.Workspace},
			{"scopes", joinScopes(t.Scopes)}, {"created", formatTime(&t.CreatedAt)}, {"last used", formatTime(t.LastUsedAt)},
			{"expires", formatTime(t.ExpiresAt)}})
	})
	cmd.Flags().StringVar(&ws, "workspace", "", "the workspace (default: the token's own)")
	c.addConnFlags(cmd, &f)
	return cmd
}

func (c *cli) tokensCreateCmd() *cobra.Command {
	var (
		f         connFlags
		ws        string
		scopes    []string
		expiresIn time.Duration
	)
	cmd := &cobra.Command{
		Use:   "create NAME --scope SCOPE...",
		Short: "Create a token and print it, this once",
		Long: `Create an API token. Its secret goes to stdout alone, this one time
(TOKEN=$(jobgate tokens create ci --scope submit) keeps it); what it is goes
to stderr. Scopes: read, submit, score, admin (repeat --scope or comma-separate).`,
		Args: cobra.ExactArgs(1),
	}
	cmd.RunE = runE("tokens create", func(ctx context.Context, args []string) error {
		if expiresIn < 0 {
			return fmt.Errorf("--expires-in must be positive, got %s", expiresIn)
		}
		req := client.TokenRequest{Name: args[0]}
		for _, s := range scopes {
			req.Scopes = append(req.Scopes, api.Scope(s))
		}
		if expiresIn > 0 {
			at := time.Now().Add(expiresIn).UTC()
			req.ExpiresAt = &at
		}
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		if ws, err = tokenWorkspace(ctx, cl, ws); err != nil {
			return err
		}
		t, err := cl.CreateToken(ctx, ws, req)
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, t)
		}
		fmt.Fprintf(c.stderr, "created token %s (%s) in workspace %s, scopes %s; it is shown only now\n", t.ID, t.Name, t.Workspace, joinScopes(t.Scopes))
		_, err = fmt.Fprintln(c.stdout, t.Secret)
		return err
	})
	fl := cmd.Flags()
	fl.StringVar(&ws, "workspace", "", "the workspace (default: the token's own)")
	fl.StringSliceVar(&scopes, "scope", nil, "read, submit, score or admin (repeat for more)")
	fl.DurationVar(&expiresIn, "expires-in", 0, "expire after this long, e.g. 720h (default: never)")
	_ = cmd.MarkFlagRequired("scope")
	c.addConnFlags(cmd, &f)
	return cmd
}

func (c *cli) tokensDeleteCmd() *cobra.Command {
	var (
		f  connFlags
		ws string
	)
	cmd := &cobra.Command{Use: "delete ID", Aliases: []string{"revoke"}, Short: "Revoke a token: requests with it are 401 from now on", Args: cobra.ExactArgs(1)}
	cmd.RunE = runE("tokens delete", func(ctx context.Context, args []string) error {
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		if ws, err = tokenWorkspace(ctx, cl, ws); err != nil {
			return err
		}
		if err := cl.DeleteToken(ctx, ws, args[0]); err != nil {
			return err
		}
		_, err = fmt.Fprintf(c.stdout, "revoked token %s of workspace %s\n", args[0], ws)
		return err
	})
	cmd.Flags().StringVar(&ws, "workspace", "", "the workspace (default: the token's own)")
	c.addConnFlags(cmd, &f)
	return cmd
}

// secretsCmd is `jobgate secrets` (list) with list, create (set) and delete.
// Values are write-only: no command shows one.
func (c *cli) secretsCmd() *cobra.Command {
	cmd := c.secretsListCmd("secrets")
	cmd.Short = "List the workspace's secrets (names only); set or delete one"
	cmd.AddCommand(c.secretsListCmd("list"), c.secretsCreateCmd(), c.secretsDeleteCmd())
	return cmd
}

func (c *cli) secretsListCmd(use string) *cobra.Command {
	var f connFlags
	cmd := &cobra.Command{Use: use, Short: "List the workspace's secret names", Args: cobra.NoArgs}
	cmd.RunE = runE("secrets", func(ctx context.Context, _ []string) error {
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		ss, err := cl.Secrets(ctx)
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, api.SecretList{Secrets: ss})
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME")
		for _, s := range ss {
			fmt.Fprintln(tw, s.Name)
		}
		return tw.Flush()
	})
	c.addConnFlags(cmd, &f)
	return cmd
}

func (c *cli) secretsCreateCmd() *cobra.Command {
	var (
		f         connFlags
		valueFile string
	)
	cmd := &cobra.Command{
		Use:     "create NAME [--value-file FILE]",
		Aliases: []string{"set", "update"},
		Short:   "Store a secret (or replace its value), read from a file or stdin",
		Long: `Store a secret of the workspace, or replace the value of one. The value is
the file's bytes (--value-file), or else standard input's, less one
trailing newline (so "echo s3cr3t | jobgate secrets create db" stores
"s3cr3t"). It never appears on the command line, and nothing prints it.`,
		Args: cobra.ExactArgs(1),
	}
	cmd.RunE = runE("secrets create", func(ctx context.Context, args []string) error {
		var (
			b   []byte
			err error
		)
		if valueFile != "" && valueFile != "-" {
			b, err = os.ReadFile(valueFile)
		} else {
			b, err = io.ReadAll(cmd.InOrStdin())
			s := strings.TrimSuffix(string(b), "\n")
			b = []byte(strings.TrimSuffix(s, "\r"))
		}
		if err != nil {
			return fmt.Errorf("read secret value: %w", err)
		}
		if len(b) == 0 {
			return errors.New("the secret value is empty: give --value-file FILE or pipe it to stdin")
		}
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		if err := cl.PutSecret(ctx, args[0], string(b)); err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, api.SecretName{Name: args[0]})
		}
		_, err = fmt.Fprintf(c.stdout, "stored secret %s\n", args[0])
		return err
	})
	cmd.Flags().StringVar(&valueFile, "value-file", "", "read the value from this file (default: stdin)")
	c.addConnFlags(cmd, &f)
	return cmd
}

func (c *cli) secretsDeleteCmd() *cobra.Command {
	var f connFlags
	cmd := &cobra.Command{Use: "delete NAME", Short: "Delete a secret; jobs that name it fail at their next start", Args: cobra.ExactArgs(1)}
	cmd.RunE = runE("secrets delete", func(ctx context.Context, args []string) error {
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		if err := cl.DeleteSecret(ctx, args[0]); err != nil {
			return err
		}
		_, err = fmt.Fprintf(c.stdout, "deleted secret %s\n", args[0])
		return err
	})
	c.addConnFlags(cmd, &f)
	return cmd
}

// auditCmd is `jobgate audit`: one page of the workspace's audit log.
func (c *cli) auditCmd() *cobra.Command {
	var (
		f      connFlags
		limit  int
		cursor string
	)
	cmd := &cobra.Command{Use: "audit", Short: "Show the workspace's audit log, newest first (admin scope)", Args: cobra.NoArgs}
	cmd.RunE = runE("audit", func(ctx context.Context, _ []string) error {
		if limit < 0 {
			return fmt.Errorf("--limit must be >= 0, got %d", limit)
		}
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		p, err := cl.Audit(ctx, limit, cursor)
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, p)
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tACTOR\tACTION\tTARGET")
		for _, e := range p.Entries {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", formatTime(&e.Time), e.Actor, e.Action, cmp.Or(e.Target, "-"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		if p.NextCursor != "" {
			fmt.Fprintf(c.stderr, "more entries: run again with --cursor %s\n", p.NextCursor)
		}
		return nil
	})
	fl := cmd.Flags()
	fl.IntVar(&limit, "limit", 0, "entries per page (0: the gateway's default, 100)")
	fl.StringVar(&cursor, "cursor", "", "start at this page (a previous page's next cursor)")
	c.addConnFlags(cmd, &f)
	return cmd
}
