package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/jobgate/jobgate/api"
)

func (c *cli) execCmd() *cobra.Command {
	var (
		f       connFlags
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "exec ID -- COMMAND [ARGS...]",
		Short: "Run a command beside a running job",
		Long: `Run a command beside a running job: in its container, as podman exec does
(with the job's environment, user and working folder), or, for a host-process
job, on its worker with the job's environment and working folder.

The command's stdout and stderr stream to this command's stdout and stderr,
and jobgate exec exits with the command's exit code. It is an argv, not a
shell line: use sh -c '...' where the image has a shell. There is no stdin and
no terminal. Ctrl-C stops the command. Needs a token with the submit scope.`,
		Example: `  jobgate exec 01jd2x4g9k5v0a8m3r7c6b1n2p -- ls -l /outputs
  jobgate exec --timeout 30s 01jd2x4g9k5v0a8m3r7c6b1n2p -- nvidia-smi`,
		Args: cobra.MinimumNArgs(2),
	}
	cmd.RunE = runE("exec", func(ctx context.Context, args []string) error {
		// After --, flags are the command's: `exec ID -- ls -l` is never
		// read as jobgate's own -l.
		if cmd.ArgsLenAtDash() != 1 {
			return fmt.Errorf("usage: jobgate exec ID -- COMMAND [ARGS...]: one job ID, then -- and the command")
		}
		req := api.ExecRequest{Command: args[1:]}
		if timeout != 0 {
			if timeout < time.Second || timeout%time.Second != 0 {
				return fmt.Errorf("--timeout %s: want whole seconds, at least 1s", timeout)
			}
			req.TimeoutSeconds = int(timeout / time.Second)
		}
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		code, err := cl.ExecWith(ctx, args[0], req, c.stdout, c.stderr)
		switch {
		case err != nil && ctx.Err() != nil:
			return &exitError{code: exitInterrupted, msg: "exec interrupted; the command was stopped"}
		case err != nil:
			return err
		case code == 0:
			return nil
		}
		// The command's own exit code, as a shell would pass it on; its
		// stderr has already said what went wrong.
		if code < 1 || code > 255 {
			code = 1
		}
		return &exitError{code: code}
	})
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "stop the command after this long (default 5m, at most 1h)")
	c.addConnFlags(cmd, &f)
	// The output is the command's own bytes; --json has nothing to change.
	_ = cmd.Flags().MarkHidden("json")
	return cmd
}
