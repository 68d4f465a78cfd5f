package gateway

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
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
	ts := httptest.NewUnstartedServer(f.g.Handler())
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
