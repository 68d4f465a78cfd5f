package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestArtifactStoreFlags: a folder and a URL together, or a URL of no store,
// are refused before anything starts, naming the flags; the S3 flags read
// the standard AWS variables.
func TestArtifactStoreFlags(t *testing.T) {
	for _, tt := range []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"both flags", []string{"gateway", "--artifacts-dir", "/tmp/a", "--artifacts-url", "s3://bucket/p"}, nil, "--artifacts-dir and --artifacts-url both given"},
		{"dir from the environment", []string{"worker", "--artifacts-url", "s3://bucket/p"}, map[string]string{"JOBGATE_ARTIFACTS_DIR": "/tmp/a"}, "--artifacts-dir and --artifacts-url both given"},
		{"unknown scheme", []string{"gateway", "--artifacts-url", "gs://bucket/p"}, nil, `--artifacts-url "gs://bucket/p": want s3://bucket/prefix`},
		{"s3 flag without an s3 store", []string{"worker", "--s3-endpoint", "http://127.0.0.1:9"}, nil, "--s3-endpoint is for an S3 store"},
		{"dev unknown scheme", []string{"dev", "--artifacts-url", "ftp://x"}, nil, `--artifacts-url "ftp://x"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			code := run(context.Background(), tt.args, func(k string) string { return tt.env[k] }, &bytes.Buffer{}, &stderr)
			if code == 0 || !strings.Contains(stderr.String(), tt.want) {
				t.Fatalf("exit %d, stderr %q; want an error containing %q", code, stderr.String(), tt.want)
			}
		})
	}
	env := map[string]string{"AWS_ACCESS_KEY_ID": "AK", "AWS_SECRET_ACCESS_KEY": "SK", "AWS_SESSION_TOKEN": "ST", "AWS_REGION": "eu-west-1", "AWS_ENDPOINT_URL_S3": "http://127.0.0.1:9"}
	for _, cmd := range []string{"gateway", "worker", "dev"} {
		fl, err := parsedFlags(t, env, cmd, "--artifacts-url", "s3://bucket/p")
		if err != nil {
			t.Fatal(err)
		}
		for flag, want := range map[string]string{"s3-access-key": "AK", "s3-secret-key": "SK", "s3-session-token": "ST", "s3-region": "eu-west-1", "s3-endpoint": "http://127.0.0.1:9"} {
			if got := fl.Lookup(flag).Value.String(); got != want {
				t.Errorf("%s --%s = %q from the AWS variables, want %q", cmd, flag, got, want)
			}
		}
	}
}
