package main

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/jobgate/jobgate/api"
)

// TestMultiLineSecretIsMaskedInLogs: a PEM key given to a real job as a
// secret never reaches its log, live or at rest, whichever way the job
// prints it: every line of it is masked.
func TestMultiLineSecretIsMaskedInLogs(t *testing.T) {
	c := newCluster(t)
	c.startWorker("w1")
	const key = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\nVJTUt9Us8cKjMzEfYyjiWA4R4/M2bS1GB4t7NXp98C3SC6dVMvDuictG\n-----END PRIVATE KEY-----\n"
	b, _ := json.Marshal(map[string]string{"name": "tls_key", "value": key})
	if code := c.do("POST", "/v1/secrets", string(b), nil); code != http.StatusCreated {
		t.Fatalf("put secret: %d", code)
	}
	j := c.submit(api.JobSpec{Mode: api.ModeProcess, Secrets: map[string]string{"KEY": "tls_key"},
		Command: []string{"/bin/sh", "-c", `printf '%s\n' "$KEY"; echo "second line: $(echo "$KEY" | sed -n 2p)"`}})
	if done := c.waitEnded(j.ID); done.Status != api.StatusSucceeded {
		t.Fatalf("job: %s (%s)", done.Status, done.Reason)
	}
	logs := c.logs(j.ID)
	if want := "***\n***\n***\n***\n\nsecond line: ***\n"; logs != want {
		t.Fatalf("logs = %q, want %q", logs, want)
	}
}
