package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

func (c *cli) artifactsCmd() *cobra.Command {
	var (
		f   connFlags
		out string
	)
	cmd := &cobra.Command{
		Use:   "artifacts ID [PATH]",
		Short: "List a job's output files, or download one",
		Long: `Without PATH, list the files the job left in its outputs folder
($JOBGATE_OUTPUTS) with their sizes. With PATH (as listed, e.g.
model/weights.bin), write that file to stdout, or to FILE with -o.`,
		Args: cobra.RangeArgs(1, 2),
	}
	cmd.RunE = runE("artifacts", func(ctx context.Context, args []string) error {
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		if len(args) == 1 {
			arts, err := cl.Artifacts(ctx, args[0])
			if err != nil {
				return err
			}
			if f.json {
				return writeJSON(c.stdout, map[string]any{"artifacts": arts})
			}
			if len(arts) == 0 {
				fmt.Fprintf(c.stderr, "job %s has no artifacts\n", args[0])
				return nil
			}
			tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "PATH\tSIZE")
			for _, a := range arts {
				fmt.Fprintf(tw, "%s\t%d\n", a.Path, a.Size)
			}
			return tw.Flush()
		}
		body, err := cl.Artifact(ctx, args[0], args[1])
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
	cmd.Flags().StringVarP(&out, "output", "o", "", "write the file here instead of stdout")
	c.addConnFlags(cmd, &f)
	return cmd
}

// writeFileAtomic writes r to a temporary file beside name and renames it
// into place, so an interrupted download leaves no half file behind.
func writeFileAtomic(name string, r io.Reader) error {
	tmp, err := os.CreateTemp(filepath.Dir(name), "."+filepath.Base(name)+".part-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, r); err != nil {
		tmp.Close()
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), name)
}
