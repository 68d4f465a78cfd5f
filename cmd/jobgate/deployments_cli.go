package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/goccy/go-yaml"
	"github.com/spf13/cobra"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/client"
	"github.com/jobgate/jobgate/internal/deploy"
)

// deployCmd is `jobgate deploy -f dep.yaml`: create a deployment, or roll
// out the file's spec to the deployment of that name when it exists.
func (c *cli) deployCmd() *cobra.Command {
	var f connFlags
	var file string
	cmd := &cobra.Command{Use: "deploy -f FILE", Short: "Deploy a model from a deployment spec (YAML or JSON)", Args: cobra.NoArgs,
		Long: `Deploy a registered model version behind the scoring router. The spec
names the deployment, the model ("iris:1", "iris@production") or a
traffic split, the model server's image and command, and replicas or
autoscale. When a deployment of that name exists, the spec replaces its
own (a new model, image, command, env or resources rolls out replica by
replica; replicas or autoscale only scale; priority and readiness_path
cannot change: delete the deployment and deploy again).`}
	cmd.RunE = runE("deploy", func(ctx context.Context, _ []string) error {
		if file == "" {
			return errors.New("-f FILE is required (a deployment spec, YAML or JSON; - for stdin)")
		}
		spec, err := readDeploymentSpec(file, os.Stdin)
		if err != nil {
			return err
		}
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		d, err := cl.CreateDeployment(ctx, spec)
		// The client's errors are *client.Error (the gateway's code and status).
		var ce *client.Error
		if errors.As(err, &ce) && ce.StatusCode == http.StatusConflict {
			// A PATCH carries neither priority nor readiness_path: refuse a
			// spec that changes them rather than leave them as they were.
			cur, gerr := cl.Deployment(ctx, spec.Name)
			if gerr != nil {
				return errors.Join(err, gerr)
			}
			if cmp.Or(spec.Priority, api.PriorityHigh) != cmp.Or(cur.Spec.Priority, api.PriorityHigh) ||
				cmp.Or(spec.ReadinessPath, deploy.DefaultReadinessPath) != cmp.Or(cur.Spec.ReadinessPath, deploy.DefaultReadinessPath) {
				return fmt.Errorf("deployment %s exists with priority %s and readiness_path %s, and a change cannot change those: delete it and deploy again",
					spec.Name, cmp.Or(cur.Spec.Priority, api.PriorityHigh), cmp.Or(cur.Spec.ReadinessPath, deploy.DefaultReadinessPath))
			}
			// The spec replaces the deployment's: no env in it clears env.
			env := spec.Env
			if env == nil {
				env = map[string]string{}
			}
			p := api.DeploymentPatch{Image: &spec.Image, Command: spec.Command, Env: env, Resources: &spec.Resources,
				Replicas: spec.Replicas, Autoscale: spec.Autoscale, Traffic: spec.Traffic}
			if spec.Model != "" {
				p.Model = &spec.Model
			}
			if p.Replicas == nil && p.Autoscale == nil {
				one := 1
				p.Replicas = &one
			}
			d, err = cl.PatchDeployment(ctx, spec.Name, p)
		}
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, d)
		}
		fmt.Fprintf(c.stdout, "deployment %s revision %d: %s (%s)\n", d.Name, d.Revision, d.Status, describeDeploymentTargets(d.Targets))
		return nil
	})
	cmd.Flags().StringVarP(&file, "file", "f", "", "deployment spec file, YAML or JSON; - for stdin")
	c.addConnFlags(cmd, &f)
	return cmd
}

// deploymentsCmd is `jobgate deployments` (list) with list, get, scale
// and delete.
func (c *cli) deploymentsCmd() *cobra.Command {
	cmd := c.deploymentsListCmd("deployments")
	cmd.Short = "List the workspace's deployments; get, scale or delete one"
	cmd.AddCommand(c.deploymentsListCmd("list"), c.deploymentsGetCmd(), c.deploymentsScaleCmd(), c.deploymentsDeleteCmd())
	return cmd
}

func (c *cli) deploymentsListCmd(use string) *cobra.Command {
	var f connFlags
	cmd := &cobra.Command{Use: use, Short: "List the workspace's deployments", Args: cobra.NoArgs}
	cmd.RunE = runE("deployments", func(ctx context.Context, _ []string) error {
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		ds, err := cl.Deployments(ctx)
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, api.DeploymentList{Deployments: ds})
		}
		if len(ds) == 0 {
			fmt.Fprintln(c.stderr, "no deployments (jobgate deploy -f dep.yaml makes one)")
			return nil
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tSTATUS\tREADY\tMODEL\tREVISION")
		for _, d := range ds {
			fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%d\n", d.Name, d.Status, d.ReadyReplicas, d.DesiredReplicas, describeDeploymentTargets(d.Targets), d.Revision)
		}
		return tw.Flush()
	})
	c.addConnFlags(cmd, &f)
	return cmd
}

func (c *cli) deploymentsGetCmd() *cobra.Command {
	var f connFlags
	cmd := &cobra.Command{Use: "get NAME", Short: "Show a deployment: status, replicas, where to score it", Args: cobra.ExactArgs(1)}
	cmd.RunE = runE("deployments get", func(ctx context.Context, args []string) error {
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		d, err := cl.Deployment(ctx, args[0])
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, d)
		}
		return c.printDeployment(d)
	})
	c.addConnFlags(cmd, &f)
	return cmd
}

func (c *cli) printDeployment(d *api.Deployment) error {
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "name:\t%s\n", d.Name)
	status := string(d.Status)
	if d.Reason != "" {
		status += " (" + d.Reason + ")"
	}
	fmt.Fprintf(tw, "status:\t%s\n", status)
	fmt.Fprintf(tw, "model:\t%s\n", describeDeploymentTargets(d.Targets))
	fmt.Fprintf(tw, "revision:\t%d\n", d.Revision)
	fmt.Fprintf(tw, "replicas:\t%d ready of %d\n", d.ReadyReplicas, d.DesiredReplicas)
	fmt.Fprintf(tw, "scoring:\t%s\n", d.ScoringPath)
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(d.Replicas) == 0 {
		return nil
	}
	fmt.Fprintln(c.stdout)
	tw = tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "REPLICA\tSTATE\tVERSION\tWORKER\tADDRESS\tRESTARTS\tJOB\tREASON")
	for _, r := range d.Replicas {
		fmt.Fprintf(tw, "%s\t%s\t%s:%d\t%s\t%s\t%d\t%s\t%s\n", r.ID, r.State, r.Model, r.Version, dash(r.Worker), dash(r.Address), r.Restarts, dash(r.JobID), r.Reason)
	}
	return tw.Flush()
}

func (c *cli) deploymentsScaleCmd() *cobra.Command {
	var f connFlags
	cmd := &cobra.Command{Use: "scale NAME REPLICAS", Short: "Set a deployment's replicas per model version (0 stops them; turns autoscale off)", Args: cobra.ExactArgs(2)}
	cmd.RunE = runE("deployments scale", func(ctx context.Context, args []string) error {
		n, err := strconv.Atoi(args[1])
		if err != nil || n < 0 {
			return fmt.Errorf("replicas %q: want a count from 0", args[1])
		}
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		d, err := cl.ScaleDeployment(ctx, args[0], n)
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, d)
		}
		fmt.Fprintf(c.stdout, "deployment %s: %d replicas desired\n", d.Name, d.DesiredReplicas)
		return nil
	})
	c.addConnFlags(cmd, &f)
	return cmd
}

func (c *cli) deploymentsDeleteCmd() *cobra.Command {
	var f connFlags
	cmd := &cobra.Command{Use: "delete NAME", Short: "Delete a deployment: its replicas drain and stop", Args: cobra.ExactArgs(1)}
	cmd.RunE = runE("deployments delete", func(ctx context.Context, args []string) error {
		cl, err := c.client(&f)
		if err != nil {
			return err
		}
		d, err := cl.DeleteDeployment(ctx, args[0])
		if err != nil {
			return err
		}
		if f.json {
			return writeJSON(c.stdout, d)
		}
		fmt.Fprintf(c.stdout, "deployment %s: deleting (its replicas drain and stop)\n", d.Name)
		return nil
	})
	c.addConnFlags(cmd, &f)
	return cmd
}

func describeDeploymentTargets(ts []api.DeploymentTarget) string {
	parts := make([]string, len(ts))
	for i, t := range ts {
		parts[i] = fmt.Sprintf("%s:%d", t.Model, t.Version)
		if len(ts) > 1 {
			parts[i] += fmt.Sprintf("=%d%%", t.Weight)
		}
	}
	return strings.Join(parts, ",")
}

// readDeploymentSpec reads a deployment spec file, YAML or JSON ("-" is
// stdin), strictly: a field the spec does not have is an error naming it.
func readDeploymentSpec(name string, stdin io.Reader) (api.DeploymentSpec, error) {
	return readSpecFile(name, stdin, "deployment spec", parseDeploymentSpec)
}

func parseDeploymentSpec(data []byte) (api.DeploymentSpec, error) {
	var spec api.DeploymentSpec
	if !json.Valid(data) {
		var tree any
		if err := yaml.Unmarshal(data, &tree); err != nil {
			return spec, fmt.Errorf("yaml: %s", yaml.FormatError(err, false, true))
		}
		if tree == nil {
			return spec, errors.New("deployment spec is empty")
		}
		var err error
		if data, err = json.Marshal(tree); err != nil {
			return spec, fmt.Errorf("deployment spec holds a value JSON cannot carry: %w", err)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&spec); err != nil {
		return spec, fmt.Errorf("deployment spec: %w", err)
	}
	return spec, nil
}
