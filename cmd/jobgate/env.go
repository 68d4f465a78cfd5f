package main

import (
	"encoding/csv"
	"fmt"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Every flag of the server commands (dev, gateway, worker, scoring, and
// migrate-keys), and the CLI's shared flags, reads a JOBGATE_* variable
// when it is not given on the command line: JOBGATE_ and the flag's name
// in upper snake case (--slots is JOBGATE_SLOTS, --redis-url
// JOBGATE_REDIS_URL). The command line wins. A list flag (--mount,
// --datastore-root, --allow-callbacks-to) takes its values comma-separated
// (CSV: quote a value with a comma in it). bindEnv does it for every flag
// the commands have, so a flag added later has its variable without more
// code.

// envAnnotation is the pflag annotation that names the variables a flag
// reads, its own first.
const envAnnotation = "jobgate_env"

// serverCommands are the commands all of whose flags read a variable:
// the servers, and migrate-keys, which takes the servers' --redis-url (so
// JOBGATE_REDIS_URL, as its error says) and --redis-ca-file.
var serverCommands = map[string]bool{"dev": true, "gateway": true, "worker": true, "scoring": true, "migrate-keys": true}

// cliEnvFlags are the flags of the other (CLI) commands that read one.
var cliEnvFlags = map[string]bool{"url": true, "token": true, "profile": true, "json": true, "scoring-url": true}

// envAliases are variables older than the rule, read when the flag's own is
// not set: the worker's --gateway-url has always read JOBGATE_URL.
// The S3 flags read the AWS SDKs' standard variables.
var envAliases = map[string][]string{
	"gateway-url":      {"JOBGATE_URL"},
	"s3-access-key":    {"AWS_ACCESS_KEY_ID"},
	"s3-secret-key":    {"AWS_SECRET_ACCESS_KEY"},
	"s3-session-token": {"AWS_SESSION_TOKEN"},
	"s3-region":        {"AWS_REGION", "AWS_DEFAULT_REGION"},
	"s3-endpoint":      {"AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"},
}

// envName is the variable of a flag.
func envName(flag string) string {
	return "JOBGATE_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// bindEnv gives the flags of root's commands their variables: it names the
// variable in each flag's help, and makes root read them (through getenv)
// once the command line is parsed, before the command runs.
func bindEnv(root *cobra.Command, getenv func(string) string) {
	var walk func(cmd *cobra.Command, server bool)
	walk = func(cmd *cobra.Command, server bool) {
		cmd.Flags().VisitAll(func(f *pflag.Flag) {
			if f.Name == "help" || (!server && !cliEnvFlags[f.Name]) {
				return
			}
			names := append([]string{envName(f.Name)}, envAliases[f.Name]...)
			_ = cmd.Flags().SetAnnotation(f.Name, envAnnotation, names)
			if !strings.Contains(f.Usage, "env "+names[0]) {
				f.Usage += " (env " + strings.Join(names, ", ") + ")"
			}
		})
		for _, sub := range cmd.Commands() {
			walk(sub, server)
		}
	}
	for _, cmd := range root.Commands() {
		walk(cmd, serverCommands[cmd.Name()])
	}
	root.PersistentPreRunE = func(cmd *cobra.Command, _ []string) error {
		return readEnv(cmd.Flags(), getenv)
	}
}

// readEnv sets each flag not given on the command line from the first of
// its variables that is set. A value the flag does not take is an error
// that names the variable.
func readEnv(fs *pflag.FlagSet, getenv func(string) string) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed {
			return
		}
		for _, name := range f.Annotations[envAnnotation] {
			v := getenv(name)
			if v == "" {
				continue
			}
			if serr := setFromEnv(f, v); serr != nil {
				err = fmt.Errorf("%s: invalid argument %q for --%s: %w", name, v, f.Name, serr)
			}
			return
		}
	})
	return err
}

// setFromEnv sets f to v as a default: f stays not Changed, so flag groups
// and required flags still see only the command line. A list flag gets the
// comma-separated values of v in place of its default.
func setFromEnv(f *pflag.Flag, v string) error {
	sv, ok := f.Value.(pflag.SliceValue)
	if !ok {
		return f.Value.Set(v)
	}
	vals, err := csv.NewReader(strings.NewReader(v)).Read()
	if err != nil {
		return err
	}
	return sv.Replace(vals)
}
