package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/testenv"
	"github.com/jobgate/jobgate/internal/webhook"
)

// cliEnv is the environment of a CLI run against c as token.
func (c *cluster) cliEnv(token string) map[string]string {
	return map[string]string{"JOBGATE_URL": c.gwURL, "JOBGATE_TOKEN": token}
}

// mustCLI runs the CLI and fails the test when it fails.
func mustCLI(t *testing.T, env map[string]string, stdin string, args ...string) cliResult {
	t.Helper()
	res := runCLI(t, env, stdin, args...)
	if res.err != nil {
		t.Fatalf("jobgate %s: %v\n%s%s", strings.Join(args, " "), res.err, res.stdout, res.stderr)
	}
	return res
}

// cliJSON runs the CLI with --json and decodes its stdout into out.
func cliJSON(t *testing.T, env map[string]string, out any, args ...string) {
	t.Helper()
	res := mustCLI(t, env, "", append(args, "--json")...)
	if err := json.Unmarshal([]byte(res.stdout), out); err != nil {
		t.Fatalf("jobgate %s --json: %v\n%s", strings.Join(args, " "), err, res.stdout)
	}
}

// wantCLIError runs the CLI and wants it to fail with an error holding msg.
func wantCLIError(t *testing.T, env map[string]string, msg string, args ...string) {
	t.Helper()
	res := runCLI(t, env, "", args...)
	if res.err == nil || !strings.Contains(res.err.Error(), msg) {
		t.Fatalf("jobgate %s: error %v, want one with %q\n%s", strings.Join(args, " "), res.err, msg, res.stdout)
	}
}

// skipWithoutPatch skips what follows when the gateway has no PATCH route
// for the resource yet (405): the client and command exist before it.
func skipWithoutPatch(t *testing.T, res cliResult) bool {
	t.Helper()
	if res.err != nil && strings.Contains(res.err.Error(), "(HTTP 405)") {
		t.Logf("the gateway answers PATCH with 405; not testing update: %v", res.err)
		return true
	}
	return false
}

// TestWorkspacesTokensSecretsCLI: workspaces, tokens, secrets and the audit
// log through the CLI against a real gateway and Redis.
func TestWorkspacesTokensSecretsCLI(t *testing.T) {
	c := newCluster(t)
	sys := c.cliEnv(c.token)

	// Workspaces: create, list, get, update.
	if res := mustCLI(t, sys, "", "workspaces", "create", "team-x", "--max-running-jobs", "2", "--image-allow", "localhost/"); res.stdout != "created workspace team-x\n" {
		t.Errorf("workspaces create: %q", res.stdout)
	}
	wantCLIError(t, sys, "conflict", "workspaces", "create", "team-x")
	if res := mustCLI(t, sys, "", "workspaces"); !regexp.MustCompile(`(?m)^team-x +2 +- +- +false `).MatchString(res.stdout) {
		t.Errorf("workspaces:\n%s", res.stdout)
	}
	var wl api.WorkspaceList
	cliJSON(t, sys, &wl, "workspaces", "list")
	if len(wl.Workspaces) < 2 {
		t.Errorf("workspaces list --json: %+v", wl)
	}
	var ws api.Workspace
	cliJSON(t, sys, &ws, "workspaces", "get", "team-x")
	if ws.Name != "team-x" || ws.Quotas.MaxRunningJobs != 2 || len(ws.ImageAllowlist) != 1 || ws.AllowHostProcess {
		t.Errorf("workspaces get --json: %+v", ws)
	}
	if res := mustCLI(t, sys, "", "workspaces", "update", "team-x", "--allow-host-process=true"); res.stdout != "updated workspace team-x: allow_host_process=true\n" {
		t.Errorf("workspaces update: %q", res.stdout)
	}
	if res := mustCLI(t, sys, "", "workspaces", "get", "team-x"); !regexp.MustCompile(`(?m)^allow host process: +true$`).MatchString(res.stdout) {
		t.Errorf("workspaces get after update:\n%s", res.stdout)
	}
	wantCLIError(t, sys, "nothing to change", "workspaces", "update", "team-x")
	wantCLIError(t, sys, `no workspace "nope"`, "workspaces", "get", "nope")

	// Tokens: the secret is printed once, alone on stdout.
	wantCLIError(t, sys, "--workspace is required", "tokens")
	res := mustCLI(t, sys, "", "tokens", "create", "ci", "--workspace", "team-x", "--scope", "read,admin")
	secret := strings.TrimSuffix(res.stdout, "\n")
	if secret == "" || strings.Contains(secret, "\n") || !strings.Contains(res.stderr, "in workspace team-x, scopes admin,read") {
		t.Fatalf("tokens create: stdout %q stderr %q", res.stdout, res.stderr)
	}
	team := c.cliEnv(secret)
	// The workspace's own token needs no --workspace.
	var tl api.TokenList
	cliJSON(t, team, &tl, "tokens")
	if len(tl.Tokens) != 1 || tl.Tokens[0].Name != "ci" || strings.Contains(mustCLI(t, team, "", "tokens", "list").stdout, secret) {
		t.Fatalf("tokens --json: %+v", tl)
	}
	id := tl.Tokens[0].ID
	if res := mustCLI(t, sys, "", "tokens", "get", id, "--workspace", "team-x"); !regexp.MustCompile(`(?m)^scopes: +admin,read$`).MatchString(res.stdout) {
		t.Errorf("tokens get:\n%s", res.stdout)
	}
	var nt api.NewToken
	cliJSON(t, team, &nt, "tokens", "create", "second", "--scope", "read", "--expires-in", "1h")
	if nt.Secret == "" || nt.ExpiresAt == nil || nt.Workspace != "team-x" {
		t.Errorf("tokens create --json: %+v", nt)
	}
	if res := mustCLI(t, team, "", "tokens", "delete", nt.ID); res.stdout != "revoked token "+nt.ID+" of workspace team-x\n" {
		t.Errorf("tokens delete: %q", res.stdout)
	}
	wantCLIError(t, c.cliEnv(nt.Secret), "HTTP 401", "list")

	// Secrets: the value comes from stdin or a file and is never printed.
	for _, r := range []cliResult{
		mustCLI(t, team, "s3cr3t-value\n", "secrets", "create", "db"),
		mustCLI(t, team, "", "secrets", "set", "api", "--value-file", writeTemp(t, "k3y-value")),
	} {
		if strings.Contains(r.stdout+r.stderr, "-value") || !strings.HasPrefix(r.stdout, "stored secret ") {
			t.Errorf("secrets create: %q %q", r.stdout, r.stderr)
		}
	}
	if res := mustCLI(t, team, "", "secrets"); res.stdout != "NAME\napi\ndb\n" {
		t.Errorf("secrets:\n%s", res.stdout)
	}
	if res := mustCLI(t, team, "", "secrets", "delete", "api"); res.stdout != "deleted secret api\n" {
		t.Errorf("secrets delete: %q", res.stdout)
	}
	var sl api.SecretList
	cliJSON(t, team, &sl, "secrets", "list")
	if len(sl.Secrets) != 1 || sl.Secrets[0].Name != "db" {
		t.Errorf("secrets list --json: %+v", sl)
	}
	wantCLIError(t, team, "the secret value is empty", "secrets", "create", "empty")
	wantCLIError(t, team, `no secret "api"`, "secrets", "delete", "api")

	// The audit log saw all of it.
	var ap api.AuditPage
	cliJSON(t, team, &ap, "audit", "--limit", "50")
	var actions []string
	for _, e := range ap.Entries {
		actions = append(actions, e.Action+" "+e.Target)
	}
	for _, want := range []string{"secret.put db", "secret.delete api", "token.revoke " + nt.ID} {
		if !strings.Contains(strings.Join(actions, "\n"), want) {
			t.Errorf("audit lacks %q: %q", want, actions)
		}
	}
	if res := mustCLI(t, team, "", "audit"); !regexp.MustCompile(`(?m)^\S+ +\S+ +secret\.delete +api$`).MatchString(res.stdout) {
		t.Errorf("audit:\n%s", res.stdout)
	}
}

func writeTemp(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestSchedulesTriggersCLI: schedules and triggers through the CLI, job
// templates from a YAML file, and completion of job IDs and names from the
// gateway.
func TestSchedulesTriggersCLI(t *testing.T) {
	c := newCluster(t)
	env := c.cliEnv(c.token)
	job := writeTemp(t, "image: "+testenv.ExampleImage+"\ncommand: [/bin/toolbox, echo, tick]\nexperiment: nightly-exp\n")

	// Schedules.
	res := mustCLI(t, env, "", "schedules", "create", "nightly", "--cron", "0 2 * * *", "--timezone", "Europe/Berlin", "-f", job)
	if !regexp.MustCompile(`^created schedule nightly \(0 2 \* \* \* Europe/Berlin\); next run \S+\n$`).MatchString(res.stdout) {
		t.Errorf("schedules create: %q", res.stdout)
	}
	wantCLIError(t, env, "cron", "schedules", "create", "bad", "--cron", "not a cron", "-f", job)
	if res := mustCLI(t, env, "", "schedules"); !regexp.MustCompile(`(?m)^nightly +0 2 \* \* \* +Europe/Berlin +Allow +false `).MatchString(res.stdout) {
		t.Errorf("schedules:\n%s", res.stdout)
	}
	var s api.Schedule
	cliJSON(t, env, &s, "schedules", "get", "nightly")
	if s.Name != "nightly" || s.Job.Image != testenv.ExampleImage || len(s.Next) != 5 {
		t.Errorf("schedules get --json: %+v", s)
	}
	if res := mustCLI(t, env, "", "schedules", "pause", "nightly"); res.stdout != "paused schedule nightly\n" {
		t.Errorf("schedules pause: %q", res.stdout)
	}
	cliJSON(t, env, &s, "schedules", "get", "nightly")
	if !s.Paused || len(s.Next) != 0 {
		t.Errorf("paused schedule: %+v", s)
	}
	cliJSON(t, env, &s, "schedules", "resume", "nightly")
	if s.Paused {
		t.Errorf("schedules resume --json: %+v", s)
	}
	res = mustCLI(t, env, "", "schedules", "run", "nightly")
	m := regexp.MustCompile(`^submitted job (\S+) \(queued\)\n$`).FindStringSubmatch(res.stdout)
	if m == nil {
		t.Fatalf("schedules run: %q", res.stdout)
	}
	jobID := m[1]
	var h api.ScheduleHistory
	cliJSON(t, env, &h, "schedules", "history", "nightly")
	if len(h.History) != 1 || h.History[0].JobID != jobID || !h.History[0].Manual {
		t.Errorf("schedules history --json: %+v", h)
	}
	if res := mustCLI(t, env, "", "schedules", "history", "nightly"); !strings.Contains(res.stdout, jobID) {
		t.Errorf("schedules history:\n%s", res.stdout)
	}
	t.Run("schedules update", func(t *testing.T) {
		res := runCLI(t, env, "", "schedules", "update", "nightly", "--cron", "0 3 * * *")
		if skipWithoutPatch(t, res) {
			t.Skip("no PATCH /v1/schedules/{name} on this gateway")
		}
		if res.err != nil || res.stdout != "updated schedule nightly (0 3 * * * Europe/Berlin)\n" {
			t.Fatalf("schedules update: %v %q", res.err, res.stdout)
		}
	})
	wantCLIError(t, env, "nothing to change", "schedules", "update", "nightly")

	// Triggers.
	secret := writeTemp(t, "0123456789abcdef-github-secret\n")
	res = mustCLI(t, env, "", "triggers", "create", "build", "--provider", "github", "--secret-file", secret,
		"--event", "push", "--ref", "refs/heads/main", "-f", job)
	m = regexp.MustCompile(`^created trigger build: deliveries go to (/hooks/trg_\S+)\n$`).FindStringSubmatch(res.stdout)
	if m == nil {
		t.Fatalf("triggers create: %q", res.stdout)
	}
	hook := m[1]
	if res := mustCLI(t, env, "", "triggers"); !regexp.MustCompile(`(?m)^build +github +push +refs/heads/main +` + hook + ` `).MatchString(res.stdout) {
		t.Errorf("triggers:\n%s", res.stdout)
	}
	var tr api.Trigger
	cliJSON(t, env, &tr, "triggers", "get", "build")
	if tr.HookURL != hook || tr.Filter.Event != "push" || tr.Job.Image != testenv.ExampleImage {
		t.Errorf("triggers get --json: %+v", tr)
	}
	if res := mustCLI(t, env, "", "triggers", "get", "build"); strings.Contains(res.stdout, "github-secret") {
		t.Errorf("triggers get shows the secret:\n%s", res.stdout)
	}
	body := []byte(`{"ref":"refs/heads/main","after":"abc123"}`)
	req, err := http.NewRequestWithContext(context.Background(), "POST", c.gwURL+hook, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-GitHub-Delivery", "d-1")
	req.Header.Set(webhook.HeaderGitHubSignature, webhook.SignGitHub([]byte("0123456789abcdef-github-secret"), body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("delivery: %d", resp.StatusCode)
	}
	var dl api.DeliveryList
	cliJSON(t, env, &dl, "triggers", "deliveries", "build")
	if len(dl.Deliveries) != 1 || dl.Deliveries[0].Outcome != "accepted" || dl.Deliveries[0].JobID == "" {
		t.Fatalf("triggers deliveries --json: %+v", dl)
	}
	if res := mustCLI(t, env, "", "triggers", "deliveries", "build"); !strings.Contains(res.stdout, dl.Deliveries[0].JobID) {
		t.Errorf("triggers deliveries:\n%s", res.stdout)
	}
	t.Run("triggers update", func(t *testing.T) {
		res := runCLI(t, env, "", "triggers", "update", "build", "--ref", "refs/heads/release")
		if skipWithoutPatch(t, res) {
			t.Skip("no PATCH /v1/triggers/{name} on this gateway")
		}
		if res.err != nil || res.stdout != "updated trigger build\n" {
			t.Fatalf("triggers update: %v %q", res.err, res.stdout)
		}
		var tr api.Trigger
		cliJSON(t, env, &tr, "triggers", "get", "build")
		if tr.Filter != (api.TriggerFilter{Event: "push", Ref: "refs/heads/release"}) || tr.HookURL != hook {
			t.Errorf("trigger after update --ref: %+v", tr)
		}
	})

	// Completion asks the gateway: job IDs, experiments, schedule and
	// trigger names; a gateway that is not there gives no suggestions and
	// no error.
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"get", ""}, jobID + "\t"},
		{[]string{"logs", jobID[:4]}, jobID + "\t"},
		{[]string{"experiments", ""}, "nightly-exp\n"},
		{[]string{"schedules", "run", "n"}, "nightly\n"},
		{[]string{"triggers", "deliveries", ""}, "build\n"},
		{[]string{"list", "--experiment", ""}, "nightly-exp\n"},
	} {
		res := mustCLI(t, env, "", append([]string{"__complete"}, tt.args...)...)
		if !strings.Contains(res.stdout, tt.want) || !strings.Contains(res.stdout, ":4\n") {
			t.Errorf("__complete %q:\n%s\nwant %q and :4 (no file completion)", tt.args, res.stdout, tt.want)
		}
	}
	if res := mustCLI(t, env, "", "__complete", "get", "zzz"); strings.Contains(res.stdout, jobID) {
		t.Errorf("__complete get zzz offers %s:\n%s", jobID, res.stdout)
	}
	down := map[string]string{"JOBGATE_URL": "http://127.0.0.1:1", "JOBGATE_TOKEN": c.token}
	if res := mustCLI(t, down, "", "__complete", "get", ""); res.stdout != ":4\n" {
		t.Errorf("__complete with the gateway down:\n%s", res.stdout)
	}
	if res := mustCLI(t, env, "", "completion", "bash"); !strings.Contains(res.stdout, "__start_jobgate") {
		t.Errorf("completion bash does not look like a bash script:\n%.300s", res.stdout)
	}

	// Deleting prints what it deleted; then it is gone.
	if res := mustCLI(t, env, "", "triggers", "delete", "build"); res.stdout != "deleted trigger build\n" {
		t.Errorf("triggers delete: %q", res.stdout)
	}
	wantCLIError(t, env, `no trigger "build"`, "triggers", "get", "build")
	if res := mustCLI(t, env, "", "schedules", "delete", "nightly"); res.stdout != "deleted schedule nightly\n" {
		t.Errorf("schedules delete: %q", res.stdout)
	}
	wantCLIError(t, env, `no schedule "nightly"`, "schedules", "get", "nightly")
	var sl api.ScheduleList
	cliJSON(t, env, &sl, "schedules")
	if len(sl.Schedules) != 0 {
		t.Errorf("schedules after delete: %+v", sl)
	}

	// Datastores: get and list beside create and delete.
	dir := t.TempDir()
	mustCLI(t, env, "", "datastores", "create", "data", dir)
	var d api.Datastore
	cliJSON(t, env, &d, "datastores", "get", "data")
	if d.Name != "data" || d.Path != dir {
		t.Errorf("datastores get --json: %+v", d)
	}
	if res := mustCLI(t, env, "", "datastores", "list"); !strings.Contains(res.stdout, dir) {
		t.Errorf("datastores list:\n%s", res.stdout)
	}
	if res := mustCLI(t, env, "", "__complete", "datastores", "delete", ""); !strings.Contains(res.stdout, "data\n") {
		t.Errorf("__complete datastores delete:\n%s", res.stdout)
	}

	// version needs no gateway.
	var v buildVersion
	cliJSON(t, nil, &v, "version")
	if !strings.HasPrefix(v.GoVersion, "go") || v.Version == "" {
		t.Errorf("version --json: %+v", v)
	}
}
