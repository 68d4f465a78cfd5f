package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// datastoresCmd is `jobgate datastores` (list), `datastores list`,
// `datastores get NAME`, `datastores create NAME PATH` and `datastores
// delete NAME`.
func (c *cli) datastoresCmd() *cobra.Command {
	cmd := c.datastoresListCmd("datastores")
	cmd.AddCommand(c.datastoresListCmd("list"), c.datastoresGetCmd(), c.datastoresCreateCmd(), c.datastoresDeleteCmd())
	return cmd
}

func (c *cli) datastoresListCmd(use string) *cobra.Command {
	var f connFlags
	cmd := &cobra.Command{
		Use:   use,
		Short: "List the workspace's datastores; get, create or delete one",
		Long: `Datastores are named host folders that jobs read as inputs:
"inputs": {"data": {"datastore": "NAME", "path": "sub/folder"}} appears
read-only at /inputs/data, or as a writable copy with "mode": "download".`,
		Args: cobra.NoArgs,
	}
	cmd.RunE = runE("datastores", func(ctx context.Context, _ []string) error {
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		ds, err := cl.ListDatastores(ctx)
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, map[string]any{"datastores": ds})
		}
		if len(ds) == 0 {
			fmt.Fprintln(c.stderr, "no datastores (jobgate datastores create NAME PATH registers one)")
			return nil
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tPATH\tCREATED\tBY")
		for _, d := range ds {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", d.Name, d.Path, d.CreatedAt.Local().Format(time.DateTime), d.CreatedBy)
		}
		return tw.Flush()
	})
	c.addConnFlags(cmd, &f)
	return cmd
}

func (c *cli) datastoresGetCmd() *cobra.Command {
	var f connFlags
	cmd := &cobra.Command{
		Use:   "get NAME",
		Short: "Show datastore NAME: its folder and who registered it",
		Args:  cobra.ExactArgs(1),
	}
	cmd.RunE = runE("datastores get", func(ctx context.Context, args []string) error {
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		d, err := cl.Datastore(ctx, args[0])
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, d)
		}
		return writeFields(c.stdout, [][2]string{{"name", d.Name}, {"path", d.Path}, {"created", formatTime(&d.CreatedAt)}, {"created by", d.CreatedBy}})
	})
	c.addConnFlags(cmd, &f)
	return cmd
}

func (c *cli) datastoresCreateCmd() *cobra.Command {
	var f connFlags
	cmd := &cobra.Command{
		Use:   "create NAME PATH",
		Short: "Register host folder PATH (absolute, on the workers) as datastore NAME",
		Args:  cobra.ExactArgs(2),
	}
	cmd.RunE = runE("datastores create", func(ctx context.Context, args []string) error {
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		d, err := cl.CreateDatastore(ctx, args[0], args[1])
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, d)
		}
		_, err = fmt.Fprintf(c.stdout, "created datastore %s (%s)\n", d.Name, d.Path)
		return err
	})
	c.addConnFlags(cmd, &f)
	return cmd
}

func (c *cli) datastoresDeleteCmd() *cobra.Command {
	var f connFlags
	cmd := &cobra.Command{
		Use:   "delete NAME",
		Short: "Delete datastore NAME (its folder is left as it is)",
		Args:  cobra.ExactArgs(1),
	}
	cmd.RunE = runE("datastores delete", func(ctx context.Context, args []string) error {
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		if err := cl.DeleteDatastore(ctx, args[0]); err != nil {
			return err
		}
		_, err = fmt.Fprintf(c.stdout, "deleted datastore %s\n", args[0])
		return err
	})
	c.addConnFlags(cmd, &f)
	return cmd
}
