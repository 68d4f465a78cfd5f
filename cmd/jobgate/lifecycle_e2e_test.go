package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jobgate/jobgate/internal/devenv"
	"github.com/jobgate/jobgate/internal/testenv"
)

// TestAComponentFailureEndsTheProcess: a part that fails ends the process
// with a non-zero exit and a message, instead of leaving one that logged
// "gateway listening" and serves nothing: `jobgate gateway` and `jobgate
// dev` (whose worker must stop with its gateway) given a TLS certificate
// that does not load.
func TestAComponentFailureEndsTheProcess(t *testing.T) {
	redisURL := testenv.Redis(t)
	// dev's own podman socket: dev starts a service there (or, without
	// podman, runs host processes only), never touching another test's.
	podman := "unix://" + filepath.Join(t.TempDir(), "podman.sock")
	bad := filepath.Join(t.TempDir(), "no-such-cert.pem")
	tests := []struct {
		name string
		args []string
	}{
		{"gateway", []string{"gateway", "--redis-url", redisURL, "--artifacts-dir", t.TempDir()}},
		{"dev", []string{"dev", "--redis-url", redisURL, "--data-dir", t.TempDir(), "--podman-url", podman, "--network", "host"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			port, err := devenv.FreePort()
			if err != nil {
				t.Fatal(err)
			}
			args := append(tt.args, "--addr", fmt.Sprintf("127.0.0.1:%d", port), "--tls-cert", bad, "--tls-key", bad, "--log-level", "warn")
			var out bytes.Buffer
			var mu sync.Mutex
			w := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(p) })
			getenv := func(k string) string {
				if k == "JOBGATE_TOKEN" {
					return testToken
				}
				return ""
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel() // only after run returned: it must end by itself
			done := make(chan int, 1)
			go func() { done <- run(ctx, args, getenv, w, w) }()
			select {
			case code := <-done:
				mu.Lock()
				defer mu.Unlock()
				if code == 0 || !strings.Contains(out.String(), "TLS certificate "+bad) {
					t.Fatalf("jobgate %s exited %d with:\n%s\nwant non-zero and a message naming the certificate", tt.name, code, out.String())
				}
			case <-time.After(60 * time.Second):
				cancel()
				<-done
				t.Fatalf("jobgate %s with a bad certificate is still running: a failed part must end the process", tt.name)
			}
		})
	}
}
