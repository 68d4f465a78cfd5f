package main

// Shell completion: cobra's `jobgate completion bash|zsh|fish|powershell`
// writes the script; the script calls `jobgate __complete ...`, and the
// commands below answer it with names looked up on the gateway. A lookup
// is short and silent: a gateway that is down or slow means no
// suggestions, never an error in the middle of a command line.

import (
	"context"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/jobgate/jobgate/client"
)

// completionTimeout bounds a lookup: a shell waits for it on every Tab.
const completionTimeout = 2 * time.Second

// completionJobs is how many recent jobs a job ID completes from.
const completionJobs = 100

// lister fetches the candidates for an argument, each "value" or
// "value\tdescription".
type lister func(ctx context.Context, cl *client.Client) ([]string, error)

func listJobs(ctx context.Context, cl *client.Client) ([]string, error) {
	l, err := cl.List(ctx, client.ListOptions{Limit: completionJobs})
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(l.Jobs))
	for _, j := range l.Jobs {
		desc := string(j.Status)
		if j.Name != "" {
			desc = j.Name + " (" + desc + ")"
		}
		out = append(out, j.ID+"\t"+desc)
	}
	return out, nil
}

func listExperiments(ctx context.Context, cl *client.Client) ([]string, error) {
	es, err := cl.Experiments(ctx)
	return names(es, err, func(i int) string { return es[i].Name })
}

func listTriggers(ctx context.Context, cl *client.Client) ([]string, error) {
	ts, err := cl.Triggers(ctx)
	return names(ts, err, func(i int) string { return ts[i].Name })
}

func listSchedules(ctx context.Context, cl *client.Client) ([]string, error) {
	ss, err := cl.Schedules(ctx)
	return names(ss, err, func(i int) string { return ss[i].Name })
}

func listDeployments(ctx context.Context, cl *client.Client) ([]string, error) {
	ds, err := cl.Deployments(ctx)
	return names(ds, err, func(i int) string { return ds[i].Name })
}

func listModels(ctx context.Context, cl *client.Client) ([]string, error) {
	ms, err := cl.Models(ctx)
	return names(ms, err, func(i int) string { return ms[i].Name })
}

func listDatastores(ctx context.Context, cl *client.Client) ([]string, error) {
	ds, err := cl.ListDatastores(ctx)
	return names(ds, err, func(i int) string { return ds[i].Name })
}

func listSecrets(ctx context.Context, cl *client.Client) ([]string, error) {
	ss, err := cl.Secrets(ctx)
	return names(ss, err, func(i int) string { return ss[i].Name })
}

func listWorkspaces(ctx context.Context, cl *client.Client) ([]string, error) {
	ws, err := cl.Workspaces(ctx)
	return names(ws, err, func(i int) string { return ws[i].Name })
}

func names[T any](items []T, err error, name func(int) string) ([]string, error) {
	if err != nil {
		return nil, err
	}
	out := make([]string, len(items))
	for i := range items {
		out[i] = name(i)
	}
	return out, nil
}

// argCompletions says what the first argument of each command completes
// from, by the command's path below the root.
var argCompletions = map[string]lister{
	"get": listJobs, "logs": listJobs, "cancel": listJobs, "metrics": listJobs, "artifacts": listJobs, "exec": listJobs,
	"experiments":  listExperiments,
	"triggers get": listTriggers, "triggers update": listTriggers, "triggers delete": listTriggers, "triggers deliveries": listTriggers,
	"schedules get": listSchedules, "schedules update": listSchedules, "schedules delete": listSchedules, "schedules pause": listSchedules,
	"schedules resume": listSchedules, "schedules run": listSchedules, "schedules history": listSchedules,
	"deployments get": listDeployments, "deployments scale": listDeployments, "deployments delete": listDeployments,
	"batch submit": listDeployments, "score": listDeployments,
	"models get": listModels, "models alias": listModels, "models download": listModels, "models delete": listModels,
	"datastores get": listDatastores, "datastores delete": listDatastores,
	"secrets delete": listSecrets,
	"workspaces get": listWorkspaces, "workspaces update": listWorkspaces,
}

// flagCompletions are the flags that take a job ID or a name, by command path.
var flagCompletions = map[string]map[string]lister{
	"models register": {"job": listJobs},
	"list":            {"experiment": listExperiments},
	"tokens":          {"workspace": listWorkspaces},
}

// addCompletions gives cmds and their subcommands their completions.
func (c *cli) addCompletions(cmds []*cobra.Command) {
	var walk func(cmd *cobra.Command, path string)
	walk = func(cmd *cobra.Command, path string) {
		if l, ok := argCompletions[path]; ok && cmd.ValidArgsFunction == nil {
			cmd.ValidArgsFunction = c.completeArg(l)
		}
		for flag, l := range flagCompletions[path] {
			_ = cmd.RegisterFlagCompletionFunc(flag, c.completeFlag(l))
		}
		for _, sub := range cmd.Commands() {
			walk(sub, path+" "+sub.Name())
		}
	}
	for _, cmd := range cmds {
		walk(cmd, cmd.Name())
	}
}

// completeArg completes a command's first argument.
func (c *cli) completeArg(l lister) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		return c.lookup(cmd, l, toComplete), cobra.ShellCompDirectiveNoFileComp
	}
}

func (c *cli) completeFlag(l lister) cobra.CompletionFunc {
	return func(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		return c.lookup(cmd, l, toComplete), cobra.ShellCompDirectiveNoFileComp
	}
}

// lookup runs l against the gateway the command's flags (already parsed
// when cobra completes) point at, keeping what starts with prefix.
func (c *cli) lookup(cmd *cobra.Command, l lister, prefix string) []cobra.Completion {
	fl := cmd.Flags()
	f := connFlags{flags: fl}
	f.url, _ = fl.GetString("url")
	f.token, _ = fl.GetString("token")
	f.profile, _ = fl.GetString("profile")
	cl, err := c.client(&f)
	if err != nil {
		return nil
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, completionTimeout)
	defer cancel()
	all, err := l(ctx, cl)
	if err != nil {
		return nil
	}
	var out []cobra.Completion
	for _, s := range all {
		if strings.HasPrefix(s, prefix) {
			out = append(out, s)
		}
	}
	return out
}
