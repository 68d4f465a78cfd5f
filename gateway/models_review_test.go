package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/artifact"
)

// slowArtifacts is the real store whose blobs read slowly: a large model's
// copy that takes longer than the server's WriteTimeout.
type slowArtifacts struct {
	artifact.Store
	delay time.Duration
}

func (s slowArtifacts) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	r, err := s.Store.Open(ctx, key)
	if err != nil {
		return nil, err
	}
	return slowReader{r, s.delay}, nil
}

type slowReader struct {
	io.ReadCloser
	delay time.Duration
}

func (r slowReader) Read(p []byte) (int, error) {
	time.Sleep(r.delay) // the scenario: a copy slower than WriteTimeout
	return r.ReadCloser.Read(p)
}

// TestModelRegisterOutlastsWriteTimeout: a registration whose copy takes
// longer than the server's WriteTimeout (a huge model) still answers its
// 201; before, the version was registered but the client got a cut
// connection and no version number.
func TestModelRegisterOutlastsWriteTimeout(t *testing.T) {
	f := newFixture(t)
	j := f.endedJob(DefaultWorkspace, systemToken, api.StatusSucceeded, map[string]string{"model.json": `{"w":1}`})
	f.g.artifacts = slowArtifacts{Store: f.g.artifacts, delay: 400 * time.Millisecond}
	ts := httptest.NewUnstartedServer(checked(t, f.g))
	ts.Config.WriteTimeout = 300 * time.Millisecond
	ts.Start()
	t.Cleanup(ts.Close)

	b, _ := json.Marshal(api.ModelRegister{Name: "big", JobID: j.ID, Path: "model.json"})
	req, _ := http.NewRequest("POST", ts.URL+"/v1/models", strings.NewReader(string(b)))
	req.Header.Set("Authorization", "Bearer "+systemToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("register a model slower to copy than WriteTimeout: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var mv api.ModelVersion
	if resp.StatusCode != http.StatusCreated || json.Unmarshal(body, &mv) != nil || mv.Version != 1 {
		t.Fatalf("register: %d %s, want 201 with version 1", resp.StatusCode, body)
	}
}

// TestModelFolderDownloadCutIsAnError: a folder version whose files cannot
// all be read ends its download with a broken connection, so a client
// sees the failure; before, the tar stream ended cleanly without the rest
// of the files and without its end, and a client took it for the model.
func TestModelFolderDownloadCutIsAnError(t *testing.T) {
	f := newFixture(t)
	j := f.endedJob(DefaultWorkspace, systemToken, api.StatusSucceeded, map[string]string{"model/a.bin": "A", "model/b.bin": "B"})
	mv := f.register(systemToken, "cut", j.ID, "model")
	// The second file is lost from the registry's area of the store.
	if err := f.g.artifacts.(artifact.Deleter).DeletePrefix(context.Background(), artifact.ModelPrefix(DefaultWorkspace, "cut", mv.Version)+"b.bin"); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", f.ts.URL+"/v1/models/cut/versions/1/download", nil)
	req.Header.Set("Authorization", "Bearer "+systemToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return // broken before the status reached the client: an error too
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err == nil {
		t.Fatalf("download of a folder version missing a file: %d, %d bytes read without an error", resp.StatusCode, len(body))
	}
}

// TestModelFolderDigestAsDocumented: the command the README gives for a
// folder version's sha256 prints the registry's digest, for a file name
// with a space too (the command split such names: xargs without -0).
func TestModelFolderDigestAsDocumented(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "`cd folder && ")
	cmdline, _, ok2 := strings.Cut(after, "`")
	if !ok || !ok2 {
		t.Fatal("README.md: no `cd folder && ...` command for a folder's digest")
	}
	for _, tool := range []string{"sh", "find", "sed", "sort", "xargs", "sha256sum"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s is not installed: %v", tool, err)
		}
	}
	files := map[string]string{"my weights.bin": "W", "config/labels.txt": "a\nb\n", "a.txt": "a"}
	outputs := map[string]string{}
	dir := t.TempDir()
	for p, c := range files {
		outputs["model/"+p] = c
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f := newFixture(t)
	j := f.endedJob(DefaultWorkspace, systemToken, api.StatusSucceeded, outputs)
	mv := f.register(systemToken, "digest", j.ID, "model")
	cmd := exec.Command("sh", "-c", cmdline)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if got := strings.Fields(string(out)); err != nil || len(got) != 2 || got[0] != mv.SHA256 {
		t.Fatalf("the README's command in the folder: %v %q; the registry's sha256 is %s", err, out, mv.SHA256)
	}
}
