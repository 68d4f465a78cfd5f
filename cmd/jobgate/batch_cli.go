package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"github.com/spf13/cobra"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/client"
)

// batchCmd is `jobgate batch submit|get|results|cancel`: HTTP batch scoring
// through a deployment.
func (c *cli) batchCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "batch", Short: "Score many rows through a deployment: submit, get, results, cancel", Args: cobra.NoArgs}
	cmd.AddCommand(c.batchSubmitCmd(), c.batchGetCmd(), c.batchResultsCmd(), c.batchCancelCmd())
	return cmd
}

func (c *cli) batchSubmitCmd() *cobra.Command {
	var f connFlags
	var file, key string
	var wait bool
	var o client.BatchOptions
	cmd := &cobra.Command{Use: "submit NAME -f ROWS.jsonl", Short: "Submit a batch of V2 inference requests (JSON lines) to deployment NAME", Args: cobra.ExactArgs(1)}
	cmd.RunE = runE("batch submit", func(ctx context.Context, args []string) error {
		if file == "" {
			return errors.New("-f ROWS.jsonl is required (one V2 inference request a line; - for stdin)")
		}
		var rows io.Reader = os.Stdin
		if file != "-" {
			fh, err := os.Open(file)
			if err != nil {
				return err
			}
			defer fh.Close()
			rows = fh
		}
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		o.IdempotencyKey = key
		acc, err := cl.SubmitBatch(ctx, args[0], rows, o)
		if err != nil {
			return err
		}
		if !wait {
			if f.json {
				return writeJSON(c.stdout, acc)
			}
			fmt.Fprintln(c.stdout, acc.ID)
			return nil
		}
		fmt.Fprintf(c.stderr, "batch %s queued\n", acc.ID)
		b, err := c.waitBatch(ctx, cl, acc.ID)
		if err != nil {
			return err
		}
		if f.json {
			if err := writeJSON(c.stdout, b); err != nil {
				return err
			}
		} else {
			fmt.Fprintln(c.stdout, b.ID)
		}
		return batchExit(b)
	})
	fl := cmd.Flags()
	fl.StringVarP(&file, "file", "f", "", "the rows: JSON lines, one V2 inference request a line; - for stdin")
	fl.BoolVar(&wait, "wait", false, "wait until the batch ends, showing its progress")
	fl.IntVar(&o.ErrorThreshold, "error-threshold", 0, "failed rows tolerated before the batch fails")
	fl.IntVar(&o.MaxConcurrency, "max-concurrency", 0, "requests in flight at once (default 4)")
	fl.StringVar((*string)(&o.Priority), "priority", "", "the batch job's priority: low (default), normal or high")
	fl.IntVar(&o.TimeoutSeconds, "timeout", 0, "seconds one attempt may run (default: the gateway's job default)")
	fl.StringVar(&key, "idempotency-key", "", "submit the batch once per key")
	c.addConnFlags(cmd, &f)
	return cmd
}

// waitBatch polls batch id until it ends, showing its progress on stderr:
// one line rewritten in place on a terminal, a line per change otherwise.
func (c *cli) waitBatch(ctx context.Context, cl *client.Client, id string) (*api.Batch, error) {
	tty := false
	if fh, ok := c.stderr.(*os.File); ok {
		tty = term.IsTerminal(int(fh.Fd()))
	}
	last := ""
	tick := time.NewTicker(500 * time.Millisecond)
	defer tick.Stop()
	for {
		b, err := cl.Batch(ctx, id)
		if err != nil {
			return nil, err
		}
		line := batchProgress(b)
		switch {
		case tty:
			fmt.Fprintf(c.stderr, "\r\x1b[K%s", line)
		case line != last:
			fmt.Fprintln(c.stderr, line)
		}
		last = line
		if b.Status != api.BatchQueued && b.Status != api.BatchRunning {
			if tty {
				fmt.Fprintln(c.stderr)
			}
			return b, nil
		}
		select {
		case <-ctx.Done():
			return nil, &exitError{code: exitInterrupted,
				msg: fmt.Sprintf("stopped waiting for batch %s; it was not canceled (jobgate batch cancel %s stops it)", id, id)}
		case <-tick.C:
		}
	}
}

// batchProgress is one line of a batch's progress, with a bar.
func batchProgress(b *api.Batch) string {
	const width = 30
	filled := 0
	if b.Total > 0 {
		filled = b.Done * width / b.Total
	}
	return fmt.Sprintf("%-9s [%s%s] %d/%d rows, %d failed, %.0f rows/s", b.Status,
		strings.Repeat("#", filled), strings.Repeat(".", width-filled), b.Done, b.Total, b.Failed, b.RowsPerSecond)
}

// batchExit is the exit status of an ended batch: 0 when it succeeded.
func batchExit(b *api.Batch) error {
	if b.Status == api.BatchSucceeded {
		return nil
	}
	return &exitError{code: 1, msg: fmt.Sprintf("batch %s %s: %s", b.ID, b.Status, b.Reason)}
}

func (c *cli) batchGetCmd() *cobra.Command {
	var f connFlags
	cmd := &cobra.Command{Use: "get ID", Short: "Show a batch: status and progress", Args: cobra.ExactArgs(1)}
	cmd.RunE = runE("batch get", func(ctx context.Context, args []string) error {
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		b, err := cl.Batch(ctx, args[0])
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, b)
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "id:\t%s\n", b.ID)
		fmt.Fprintf(tw, "deployment:\t%s\n", b.Deployment)
		fmt.Fprintf(tw, "status:\t%s\n", b.Status)
		fmt.Fprintf(tw, "rows:\t%d done of %d, %d failed\n", b.Done, b.Total, b.Failed)
		fmt.Fprintf(tw, "rows/s:\t%.1f\n", b.RowsPerSecond)
		if b.Reason != "" {
			fmt.Fprintf(tw, "reason:\t%s\n", b.Reason)
		}
		return tw.Flush()
	})
	c.addConnFlags(cmd, &f)
	return cmd
}

func (c *cli) batchResultsCmd() *cobra.Command {
	var f connFlags
	cmd := &cobra.Command{Use: "results ID", Short: "Print a batch's answers so far: JSON lines in request order", Args: cobra.ExactArgs(1)}
	cmd.RunE = runE("batch results", func(ctx context.Context, args []string) error {
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		rc, err := cl.BatchResults(ctx, args[0])
		if err != nil {
			return err
		}
		defer rc.Close()
		_, err = io.Copy(c.stdout, rc)
		return err
	})
	c.addConnFlags(cmd, &f)
	return cmd
}

func (c *cli) batchCancelCmd() *cobra.Command {
	var f connFlags
	cmd := &cobra.Command{Use: "cancel ID", Short: "Cancel a batch (the answers done so far stay)", Args: cobra.ExactArgs(1)}
	cmd.RunE = runE("batch cancel", func(ctx context.Context, args []string) error {
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		b, err := cl.CancelBatch(ctx, args[0])
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, b)
		}
		fmt.Fprintf(c.stdout, "batch %s %s (%d of %d rows done)\n", b.ID, b.Status, b.Done, b.Total)
		return nil
	})
	c.addConnFlags(cmd, &f)
	return cmd
}
