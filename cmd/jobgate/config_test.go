package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/jobgate/jobgate/gateway"
	"github.com/jobgate/jobgate/internal/control"
	"github.com/jobgate/jobgate/internal/webhook"
	"github.com/jobgate/jobgate/worker"
)

// explicitDefaults are the flags whose default is not their zero value, and
// why: the zero value means something else than the component's default,
// or the default is the CLI's own, not a component's.
var explicitDefaults = map[string]string{
	"network":        `dev runs job containers on the host network; "" is podman's default bridge, the worker's default`,
	"data-dir":       "the CLI's folder beside the working directory",
	"artifacts-dir":  "the CLI's folder beside the working directory",
	"checkpoint-dir": "the CLI's folder beside the working directory; worker.Config's is in the temp folder",
	"log-level":      "the logger's level, no component's Config",
}

// TestFlagsDefaultToZero: the flags of dev, gateway and worker default to
// their zero value, leaving the default to the component's New, and say in
// their usage what it is; pflag adds no second "(default ...)".
func TestFlagsDefaultToZero(t *testing.T) {
	noEnv := func(string) string { return "" }
	for _, cmd := range []*cobra.Command{devCommand(noEnv, io.Discard, io.Discard), gatewayCommand(noEnv, io.Discard), workerCommand(noEnv, io.Discard)} {
		t.Run(cmd.Name(), func(t *testing.T) {
			cmd.Flags().VisitAll(func(f *pflag.Flag) {
				switch f.DefValue {
				case "", "0", "0s", "false", "[]":
				default:
					if explicitDefaults[f.Name] == "" {
						t.Errorf("--%s defaults to %q: leave it zero and name the default in its usage", f.Name, f.DefValue)
					}
				}
			})
			for _, line := range strings.Split(cmd.Flags().FlagUsages(), "\n") {
				if strings.Count(line, "(default") > 1 {
					t.Errorf("two defaults in %q", strings.TrimSpace(line))
				}
			}
		})
	}
}

// TestWorkerConfig: workerConfig converts the flags' units to bytes, leaves
// zero where a flag is not given (the defaults are worker.New's), and says
// which flag is not usable.
func TestWorkerConfig(t *testing.T) {
	data := t.TempDir()
	tests := []struct {
		name       string
		args       []string
		want       worker.Config
		wantPodman worker.PodmanConfig
		wantErr    string
	}{
		{name: "no flags", want: worker.Config{Mounts: map[string]string{}},
			wantPodman: worker.PodmanConfig{URL: worker.DefaultPodmanURL}},
		{name: "sizes and times",
			args: []string{"--max-input-mb", "2", "--max-output-mb", "3", "--max-live-log-mb", "4", "--max-log-mb", "5",
				"--max-log-line-kb", "6", "--slots", "7", "--stop-grace", "45s", "--gpu-sample-every", "1s",
				"--node-prep-timeout", "2m", "--shutdown-timeout", "3s", "--reap-every", "4s", "--mount", "data=" + data,
				"--podman-url", "unix:///tmp/p.sock", "--network", "none", "--rlimit-nofile", "100",
				"--advertise-host", "127.0.0.2", "--drain-delay", "2s"},
			want: worker.Config{MaxInputBytes: 2 << 20, MaxOutputBytes: 3 << 20, MaxLiveLogBytes: 4 << 20, MaxLogBytes: 5 << 20,
				MaxLogLineBytes: 6 << 10, Slots: 7, StopGrace: 45 * time.Second, GPUSampleEvery: time.Second,
				NodePrepTimeout: 2 * time.Minute, ShutdownTimeout: 3 * time.Second, ReapEvery: 4 * time.Second,
				Mounts: map[string]string{"data": data}, AdvertiseHost: "127.0.0.2", DrainDelay: 2 * time.Second},
			wantPodman: worker.PodmanConfig{URL: "unix:///tmp/p.sock", Network: "none", StopGrace: 45 * time.Second, NofileLimit: 100}},
		{name: "negative size", args: []string{"--max-output-mb", "-1"}, wantErr: "--max-output-mb must be between 1 and 1048576"},
		{name: "size too large", args: []string{"--max-input-mb", "1048577"}, wantErr: "--max-input-mb must be between 1 and 1048576"},
		{name: "line too long", args: []string{"--max-log-line-kb", "1048577"}, wantErr: "--max-log-line-kb must be between 1 and 1048576"},
		{name: "negative grace", args: []string{"--stop-grace", "-1s"}, wantErr: "stop grace -1s: must not be negative"},
		{name: "bad mount", args: []string{"--mount", "data"}, wantErr: `--mount "data": want NAME=/host/folder`},
		{name: "mount twice", args: []string{"--mount", "a=/x", "--mount", "a=/y"}, wantErr: "--mount: a is given twice"},
		{name: "bad network", args: []string{"--network", "bridge0"}, wantErr: `podman network "bridge0"`},
		{name: "negative drain delay", args: []string{"--drain-delay", "-1s"}, wantErr: "drain delay -1s: must not be negative"},
		{name: "advertise host with a port", args: []string{"--advertise-host", "127.0.0.1:80"}, wantErr: `advertise host "127.0.0.1:80"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f workerFlags
			cmd := &cobra.Command{Use: "worker"}
			f.register(cmd, "")
			if err := cmd.Flags().Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			got, gotPodman, err := workerConfig(&f)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("workerConfig: %v, want an error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("worker.Config (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantPodman, gotPodman); diff != "" {
				t.Errorf("worker.PodmanConfig (-want +got):\n%s", diff)
			}
		})
	}
}

// TestGatewayConfig: gatewayConfig turns --allow-callbacks-to into the
// address policy and refuses what it does not know.
func TestGatewayConfig(t *testing.T) {
	tests := []struct {
		name        string
		f           gatewayFlags
		want        gateway.Config
		wantControl control.Config
		wantErr     string
	}{
		{name: "no flags", want: gateway.Config{AdminToken: "tok"}},
		{name: "callbacks and lost after",
			f:           gatewayFlags{allowCallbacks: []string{"loopback", "private"}, workerLostAfter: 5 * time.Second, addr: "127.0.0.1:0"},
			want:        gateway.Config{AdminToken: "tok", Addr: "127.0.0.1:0"},
			wantControl: control.Config{WorkerLostAfter: 5 * time.Second, CallbackPolicy: webhook.AddressPolicy{AllowLoopback: true, AllowPrivate: true}}},
		{name: "run artifacts cap in MiB", f: gatewayFlags{maxRunArtifactsMB: 3},
			want: gateway.Config{AdminToken: "tok", MaxRunArtifactBytes: 3 << 20}},
		{name: "unknown callback target", f: gatewayFlags{allowCallbacks: []string{"public"}}, wantErr: `--allow-callbacks-to "public"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, gotControl, err := gatewayConfig(&tt.f, "tok")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("gatewayConfig: %v, want an error with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("gateway.Config (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantControl, gotControl); diff != "" {
				t.Errorf("control.Config (-want +got):\n%s", diff)
			}
		})
	}
}
