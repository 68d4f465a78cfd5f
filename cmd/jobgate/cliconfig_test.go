package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jobgate/jobgate/api"
)

// writeConfigFile writes body as a config file in a new temporary folder
// and returns its path.
func writeConfigFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const twoProfiles = `current_profile: a
profiles:
  a: {url: "http://127.0.0.1:1001", token: ta}
  b: {url: "http://127.0.0.1:1002", token: tb}
  urlonly: {url: "http://127.0.0.1:1003"}
`

// TestConnectionPrecedence: flags beat JOBGATE_URL/JOBGATE_TOKEN, which
// beat the profile (--profile, then JOBGATE_PROFILE, then
// current_profile), which beats the defaults, setting by setting.
func TestConnectionPrecedence(t *testing.T) {
	// Not parallel: the dev token file fallback reads the working directory.
	t.Chdir(t.TempDir())
	if err := os.MkdirAll(".jobgate", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(".jobgate", "token"), []byte("tdev\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfigFile(t, twoProfiles)
	for _, tt := range []struct {
		name       string
		env        map[string]string
		flags      connFlags
		url, token string
		err        string
	}{
		{name: "current profile", url: "http://127.0.0.1:1001", token: "ta"},
		{name: "env beats profile", env: map[string]string{"JOBGATE_URL": "http://127.0.0.1:2001", "JOBGATE_TOKEN": "te"},
			url: "http://127.0.0.1:2001", token: "te"},
		{name: "env per setting", env: map[string]string{"JOBGATE_TOKEN": "te"}, url: "http://127.0.0.1:1001", token: "te"},
		{name: "job token beats profile", env: map[string]string{"JOBGATE_JOB_TOKEN": "tj"}, url: "http://127.0.0.1:1001", token: "tj"},
		{name: "flags beat env", env: map[string]string{"JOBGATE_URL": "http://127.0.0.1:2001", "JOBGATE_TOKEN": "te"},
			flags: connFlags{url: "http://127.0.0.1:3001", token: "tf"}, url: "http://127.0.0.1:3001", token: "tf"},
		{name: "JOBGATE_PROFILE", env: map[string]string{"JOBGATE_PROFILE": "b"}, url: "http://127.0.0.1:1002", token: "tb"},
		{name: "--profile beats JOBGATE_PROFILE", env: map[string]string{"JOBGATE_PROFILE": "b"}, flags: connFlags{profile: "a"},
			url: "http://127.0.0.1:1001", token: "ta"},
		{name: "--profile beats env", env: map[string]string{"JOBGATE_URL": "http://127.0.0.1:2001", "JOBGATE_TOKEN": "te"},
			flags: connFlags{profile: "b"}, url: "http://127.0.0.1:1002", token: "tb"},
		{name: "--url beats --profile", flags: connFlags{profile: "b", url: "http://127.0.0.1:3001"}, url: "http://127.0.0.1:3001", token: "tb"},
		{name: "env beats JOBGATE_PROFILE", env: map[string]string{"JOBGATE_PROFILE": "b", "JOBGATE_TOKEN": "te"},
			url: "http://127.0.0.1:1002", token: "te"},
		{name: "profile without token falls back to the dev token file", flags: connFlags{profile: "urlonly"},
			url: "http://127.0.0.1:1003", token: "tdev"},
		{name: "unknown profile", flags: connFlags{profile: "nope"}, err: `no profile "nope" in ` + cfg},
		{name: "no config file", env: map[string]string{"JOBGATE_CONFIG": filepath.Join(t.TempDir(), "none.yaml")},
			url: defaultGatewayURL, token: "tdev"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"JOBGATE_CONFIG": cfg}
			for k, v := range tt.env {
				env[k] = v
			}
			c := &cli{env: func(k string) string { return env[k] }}
			url, token, err := c.connection(&tt.flags)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || url != tt.url || token != tt.token {
				t.Errorf("connection = %q, %q, %v; want %q, %q", url, token, err, tt.url, tt.token)
			}
		})
	}
}

func TestConfigPath(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"HOME": "/home/u"}, "/home/u/.config/jobgate/config.yaml"},
		{map[string]string{"HOME": "/home/u", "XDG_CONFIG_HOME": "/xdg"}, "/xdg/jobgate/config.yaml"},
		{map[string]string{"HOME": "/home/u", "XDG_CONFIG_HOME": "/xdg", "JOBGATE_CONFIG": "/etc/jg.yaml"}, "/etc/jg.yaml"},
		{map[string]string{}, ""},
	} {
		if got := configPath(func(k string) string { return tt.env[k] }); got != tt.want {
			t.Errorf("configPath(%v) = %q, want %q", tt.env, got, tt.want)
		}
	}
}

// TestConfigCommands: set-profile writes the file (0600, in a folder it
// makes), the first profile becomes current, use switches, list hides
// tokens, and a variable in the environment is not copied into a profile.
func TestConfigCommands(t *testing.T) {
	t.Parallel()
	xdg := t.TempDir()
	path := filepath.Join(xdg, "jobgate", "config.yaml")
	env := map[string]string{"XDG_CONFIG_HOME": xdg, "HOME": t.TempDir(), "JOBGATE_URL": "http://127.0.0.1:9"}

	res := runCLI(t, env, "", "config", "set-profile", "lab", "--url", "http://127.0.0.1:8081", "--token", "tok-lab")
	if res.err != nil || res.stdout != "created profile lab in "+path+" (current)\n" {
		t.Fatalf("set-profile lab: %v\n%s%s", res.err, res.stdout, res.stderr)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("config file mode = %v, want 0600", st.Mode().Perm())
	}
	if res := runCLI(t, env, "", "config", "set-profile", "prod", "--token", "tok-prod"); res.err != nil || res.stdout != "created profile prod in "+path+"\n" {
		t.Fatalf("set-profile prod: %v\n%s%s", res.err, res.stdout, res.stderr)
	}
	// Only the flag given changes.
	if res := runCLI(t, env, "", "config", "set-profile", "lab", "--token", "tok-lab2"); res.err != nil {
		t.Fatalf("set-profile lab --token: %v", res.err)
	}
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	want := cliConfig{CurrentProfile: "lab", Profiles: map[string]profile{
		"lab":  {URL: "http://127.0.0.1:8081", Token: "tok-lab2"},
		"prod": {Token: "tok-prod"}, // not JOBGATE_URL's value
	}}
	if got, _ := json.Marshal(cfg); !bytes.Equal(got, must(json.Marshal(want))) {
		t.Errorf("config = %s, want %s", got, must(json.Marshal(want)))
	}

	if res := runCLI(t, env, "", "config", "use", "prod"); res.err != nil || res.stdout != "using profile prod\n" {
		t.Fatalf("config use prod: %v\n%s%s", res.err, res.stdout, res.stderr)
	}
	if res := runCLI(t, env, "", "config", "use", "nope"); res.err == nil || !strings.Contains(res.err.Error(), `no profile "nope"`) {
		t.Errorf("config use nope: %v", res.err)
	}
	res = runCLI(t, env, "", "config", "list")
	if res.err != nil || strings.Contains(res.stdout, "tok-") {
		t.Fatalf("config list: %v\n%s", res.err, res.stdout)
	}
	wantList := "CURRENT  NAME  URL                    TOKEN\n" +
		"         lab   http://127.0.0.1:8081  set\n" +
		"*        prod  -                      set\n"
	if res.stdout != wantList {
		t.Errorf("config list =\n%s\nwant\n%s", res.stdout, wantList)
	}
	res = runCLI(t, env, "", "config", "list", "--json")
	var v configListView
	if res.err != nil || json.Unmarshal([]byte(res.stdout), &v) != nil || strings.Contains(res.stdout, "tok-") ||
		v.CurrentProfile != "prod" || len(v.Profiles) != 2 || !v.Profiles[1].Current || !v.Profiles[0].HasToken {
		t.Errorf("config list --json: %v\n%s", res.err, res.stdout)
	}
	// Completion of `config use` offers the profiles.
	res = runCLI(t, env, "", "__complete", "config", "use", "")
	if res.err != nil || !strings.HasPrefix(res.stdout, "lab\nprod\n") {
		t.Errorf("__complete config use: %v\n%s", res.err, res.stdout)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestConfigFileErrors: a key the file does not have is an error that
// names the file, not a silently missing token.
func TestConfigFileErrors(t *testing.T) {
	t.Parallel()
	path := writeConfigFile(t, "profiles:\n  a: {url: http://127.0.0.1:1, tokn: x}\n")
	res := runCLI(t, map[string]string{"JOBGATE_CONFIG": path}, "", "list")
	if res.err == nil || !strings.Contains(res.err.Error(), path) || !strings.Contains(res.err.Error(), "tokn") {
		t.Errorf("list with a bad config: %v", res.err)
	}
	// An empty file is no profiles.
	empty := writeConfigFile(t, "")
	if res := runCLI(t, map[string]string{"JOBGATE_CONFIG": empty}, "", "config", "list"); res.err != nil || !strings.Contains(res.stderr, "no profiles") {
		t.Errorf("config list of an empty file: %v\n%s", res.err, res.stderr)
	}
}

// TestProfileThroughMain: the real entry point, with the process
// environment (t.Setenv): JOBGATE_PROFILE picks the profile whose URL and
// token reach the gateway.
func TestProfileThroughMain(t *testing.T) {
	// Not parallel: t.Setenv.
	g, url := newFakeGateway(t)
	g.add(api.JobSpec{Command: []string{"a"}})
	xdg := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", xdg)
	t.Setenv("JOBGATE_CONFIG", "")
	t.Setenv("JOBGATE_URL", "")
	t.Setenv("JOBGATE_TOKEN", "")
	t.Setenv("JOBGATE_JOB_TOKEN", "")
	t.Setenv("JOBGATE_PROFILE", "fake")
	var out, errOut bytes.Buffer
	if code := run(t.Context(), []string{"config", "set-profile", "fake", "--url", url, "--token", fakeToken}, os.Getenv, &out, &errOut); code != 0 {
		t.Fatalf("config set-profile: exit %d: %s", code, errOut.String())
	}
	if code := run(t.Context(), []string{"config", "set-profile", "other", "--url", "http://127.0.0.1:1", "--token", "x", "--use"}, os.Getenv, &out, &errOut); code != 0 {
		t.Fatalf("config set-profile other: exit %d: %s", code, errOut.String())
	}
	out.Reset()
	if code := run(t.Context(), []string{"get", "job-01"}, os.Getenv, &out, &errOut); code != 0 || !strings.Contains(out.String(), "job-01") {
		t.Fatalf("get with JOBGATE_PROFILE=fake: exit %d\n%s%s", code, out.String(), errOut.String())
	}
	// JOBGATE_TOKEN beats the profile JOBGATE_PROFILE names, but not the
	// one --profile names.
	t.Setenv("JOBGATE_TOKEN", "wrong")
	if code := run(t.Context(), []string{"get", "job-01"}, os.Getenv, &out, &errOut); code == 0 {
		t.Error("get with JOBGATE_TOKEN=wrong and JOBGATE_PROFILE=fake used the profile's token")
	}
	t.Setenv("JOBGATE_PROFILE", "")
	errOut.Reset()
	if code := run(t.Context(), []string{"get", "job-01", "--profile", "fake"}, os.Getenv, &out, &errOut); code != 0 {
		t.Errorf("get --profile fake with JOBGATE_TOKEN=wrong: exit %d: %s", code, errOut.String())
	}
}
