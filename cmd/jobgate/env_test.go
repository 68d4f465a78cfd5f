package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// envSample is a value of a flag's type that no flag has as its default, and
// how the flag prints it once set.
func envSample(f *pflag.Flag) (env, want string, ok bool) {
	switch f.Value.Type() {
	case "string":
		return "from-env", "from-env", true
	case "bool":
		if f.DefValue == "true" {
			return "false", "false", true
		}
		return "true", "true", true
	case "duration":
		return "7s", "7s", true
	case "int", "int64", "uint64", "uint", "int32", "uint32":
		return "7", "7", true
	case "float64":
		return "0.5", "0.5", true
	case "stringSlice", "stringArray":
		return "a=1,b=2", "[a=1,b=2]", true
	}
	return "", "", false
}

// parsedFlags runs `jobgate <command> args...` with env up to the point
// where the command would run, and returns its flags as they were parsed.
func parsedFlags(t *testing.T, env map[string]string, command string, args ...string) (*pflag.FlagSet, error) {
	t.Helper()
	root := rootCommand(func(k string) string { return env[k] }, io.Discard, io.Discard)
	var got *pflag.FlagSet
	for _, cmd := range root.Commands() {
		if cmd.Name() == command {
			cmd.RunE = func(cmd *cobra.Command, _ []string) error { got = cmd.Flags(); return nil }
		}
	}
	root.SetArgs(append([]string{command}, args...))
	if err := root.ExecuteContext(context.Background()); err != nil {
		return nil, err
	}
	if got == nil {
		t.Fatalf("jobgate %s did not run", command)
	}
	return got, nil
}

// TestEveryServerFlagHasAVariable: every flag of every server command reads
// JOBGATE_<FLAG>, says so in its help, and the command line wins over it.
func TestEveryServerFlagHasAVariable(t *testing.T) {
	t.Parallel()
	for _, command := range []string{"dev", "gateway", "worker", "scoring"} {
		defaults, err := parsedFlags(t, nil, command)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		defaults.VisitAll(func(f *pflag.Flag) {
			if f.Name == "help" {
				return
			}
			n++
			name := envName(f.Name)
			t.Run(command+"/"+f.Name, func(t *testing.T) {
				env, want, ok := envSample(f)
				if !ok {
					t.Fatalf("--%s is a %s: give envSample a value of that type", f.Name, f.Value.Type())
				}
				if !strings.Contains(f.Usage, name) {
					t.Errorf("the help of --%s does not name %s: %q", f.Name, name, f.Usage)
				}
				fs, err := parsedFlags(t, map[string]string{name: env}, command)
				if err != nil {
					t.Fatalf("%s=%s: %v", name, env, err)
				}
				if got := fs.Lookup(f.Name).Value.String(); got != want || got == f.Value.String() {
					t.Errorf("%s=%s: --%s is %q, want %q (its default is %q)", name, env, f.Name, got, want, f.Value.String())
				}
				// The command line wins.
				arg := "--" + f.Name + "=" + f.Value.String()
				if f.Value.Type() == "stringSlice" || f.Value.Type() == "stringArray" {
					arg = "--" + f.Name + "=c=3"
				}
				fs, err = parsedFlags(t, map[string]string{name: env}, command, arg)
				if err != nil {
					t.Fatalf("%s=%s %s: %v", name, env, arg, err)
				}
				if got := fs.Lookup(f.Name).Value.String(); got == want {
					t.Errorf("%s=%s %s: --%s is %q, the variable's value", name, env, arg, f.Name, got)
				}
			})
		})
		if n < 5 {
			t.Errorf("jobgate %s has only %d flags: the walk is broken", command, n)
		}
	}
}

func TestEnvVariables(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		command string
		env     map[string]string
		args    []string
		flag    string
		want    string
	}{
		{name: "worker gateway-url from JOBGATE_URL, as documented", command: "worker",
			env: map[string]string{"JOBGATE_URL": "http://127.0.0.1:8080"}, flag: "gateway-url", want: "http://127.0.0.1:8080"},
		{name: "JOBGATE_GATEWAY_URL over JOBGATE_URL", command: "worker",
			env: map[string]string{"JOBGATE_URL": "http://127.0.0.2", "JOBGATE_GATEWAY_URL": "http://127.0.0.3"}, flag: "gateway-url", want: "http://127.0.0.3"},
		{name: "redis url", command: "gateway",
			env: map[string]string{"JOBGATE_REDIS_URL": "redis://127.0.0.1:1/2"}, flag: "redis-url", want: "redis://127.0.0.1:1/2"},
		{name: "a list, comma-separated", command: "worker",
			env: map[string]string{"JOBGATE_MOUNT": `data=/srv/data,"odd=/a,b"`}, flag: "mount", want: `[data=/srv/data,"odd=/a,b"]`}, // String quotes a value with a comma,
		{name: "an empty variable is not set", command: "worker",
			env: map[string]string{"JOBGATE_SLOTS": ""}, flag: "slots", want: "0"},
		{name: "CLI url", command: "get",
			env: map[string]string{"JOBGATE_URL": "http://127.0.0.1:1"}, args: []string{"x"}, flag: "url", want: "http://127.0.0.1:1"},
		{name: "CLI json", command: "list",
			env: map[string]string{"JOBGATE_JSON": "1"}, flag: "json", want: "true"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fs, err := parsedFlags(t, tt.env, tt.command, tt.args...)
			if err != nil {
				t.Fatal(err)
			}
			if got := fs.Lookup(tt.flag).Value.String(); got != tt.want {
				t.Errorf("--%s = %q, want %q", tt.flag, got, tt.want)
			}
		})
	}
}

// TestEnvCLIOtherFlags: the CLI's own flags (other than the shared ones)
// read no variable: JOBGATE_FILE is not submit's -f.
func TestEnvCLIOtherFlags(t *testing.T) {
	t.Parallel()
	root := rootCommand(func(string) string { return "" }, io.Discard, io.Discard)
	for _, cmd := range root.Commands() {
		if cmd.Name() != "submit" {
			continue
		}
		if f := cmd.Flags().Lookup("file"); f.Annotations[envAnnotation] != nil {
			t.Errorf("submit --file reads %v", f.Annotations[envAnnotation])
		}
		if f := cmd.Flags().Lookup("url"); f.Annotations[envAnnotation] == nil {
			t.Error("submit --url reads no variable")
		}
	}
}

// TestEnvBadValue: a variable the flag cannot take stops the command with
// an error that names the variable and the flag.
func TestEnvBadValue(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	env := map[string]string{"JOBGATE_SLOTS": "x", "JOBGATE_REDIS_URL": "redis://127.0.0.1:1"}
	code := run(context.Background(), []string{"worker"}, func(k string) string { return env[k] }, io.Discard, &stderr)
	if code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if want := `error: JOBGATE_SLOTS: invalid argument "x" for --slots`; !strings.HasPrefix(stderr.String(), want) {
		t.Errorf("stderr %q, want it to start with %q", stderr.String(), want)
	}
}
