package worker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/internal/artifact"
	"github.com/jobgate/jobgate/internal/store"
)

// TestReadiness: ready on the first good probe, back to starting only
// after probeFailures bad ones in a row; fast probes until ready.
func TestReadiness(t *testing.T) {
	tests := []struct {
		name   string
		probes []bool
		want   []string // the state after each probe, "*" where it changed
	}{
		{name: "starting until the first success", probes: []bool{false, false, true},
			want: []string{"starting", "starting", "ready*"}},
		{name: "two failures keep it ready", probes: []bool{true, false, false, true, false},
			want: []string{"ready*", "ready", "ready", "ready", "ready"}},
		{name: "three failures in a row", probes: []bool{true, false, false, false, true},
			want: []string{"ready*", "ready", "ready", "starting*", "ready*"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rd readiness
			var got []string
			for _, ok := range tt.probes {
				state, changed := rd.observe(ok)
				s := string(state)
				if changed {
					s += "*"
				}
				got = append(got, s)
				if want := probeFast; state == store.EndpointReady {
					if rd.interval() != probeSlow {
						t.Errorf("ready: next probe in %s, want %s", rd.interval(), probeSlow)
					}
				} else if rd.interval() != want {
					t.Errorf("starting: next probe in %s, want %s", rd.interval(), want)
				}
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Fatalf("states %v, want %v", got, tt.want)
			}
		})
	}
}

// TestProbeOnce: only a 200 counts; a refused connection does not.
func TestProbeOnce(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusServiceUnavailable)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v2/health/ready" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(int(status.Load()))
	}))
	client := srv.Client()
	url := srv.URL + readinessPath("")
	if probeOnce(t.Context(), client, url) {
		t.Fatal("a 503 counted as ready")
	}
	status.Store(http.StatusOK)
	if !probeOnce(t.Context(), client, url) {
		t.Fatal("a 200 did not count as ready")
	}
	if probeOnce(t.Context(), client, srv.URL+readinessPath("other")) {
		t.Fatal("a 404 counted as ready")
	}
	srv.Close()
	if probeOnce(t.Context(), client, url) {
		t.Fatal("a closed server counted as ready")
	}
}

// TestProbeRedirectNotFollowed: a replica that answers its probe with a
// redirect does not send its worker's request elsewhere, and is not ready.
func TestProbeRedirectNotFollowed(t *testing.T) {
	var elsewhere atomic.Int64
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	defer other.Close()
	replica := httptest.NewServer(http.RedirectHandler(other.URL+"/internal", http.StatusFound))
	defer replica.Close()
	if probeOnce(t.Context(), newProbeClient(), replica.URL+readinessPath("")) || elsewhere.Load() != 0 {
		t.Fatalf("the probe followed the replica's redirect (%d requests elsewhere) or counted it as ready", elsewhere.Load())
	}
}

// putModel stores files under prefix and returns their digest as the
// registry computes it (api.ModelVersion.SHA256).
func putModel(t *testing.T, arts artifact.Store, prefix string, kind api.ModelKind, files map[string]string) string {
	t.Helper()
	var rels []string
	for rel, body := range files {
		if err := arts.Put(context.Background(), prefix+rel, strings.NewReader(body)); err != nil {
			t.Fatal(err)
		}
		rels = append(rels, rel)
	}
	sum := func(b string) string { s := sha256.Sum256([]byte(b)); return hex.EncodeToString(s[:]) }
	if kind == api.ModelFileKind {
		return sum(files[rels[0]])
	}
	// The documented lines, sorted by path in byte order.
	sorted := slices.Sorted(slices.Values(rels))
	var lines bytes.Buffer
	for _, rel := range sorted {
		lines.WriteString(sum(files[rel]) + "  " + rel + "\n")
	}
	return sum(lines.String())
}

// TestModelCache: a version is fetched once its files match its digest,
// served from the cache after, fetched again when the cached copy was
// changed, and refused when the store's files do not match.
func TestModelCache(t *testing.T) {
	ctx := context.Background()
	arts := artifact.Dir{Root: t.TempDir()}
	folder := map[string]string{"model.json": "{}", "a/b.bin": "bbb", "a-b.txt": "dash sorts before slash"}
	tests := []struct {
		name  string
		kind  api.ModelKind
		files map[string]string
	}{
		{name: "file", kind: api.ModelFileKind, files: map[string]string{"model.json": `{"kind":"x"}`}},
		{name: "folder", kind: api.ModelFolderKind, files: folder},
		{name: "folder of one file", kind: api.ModelFolderKind, files: map[string]string{"only.json": "{}"}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := artifact.ModelPrefix("default", "m", i+1)
			want := putModel(t, arts, prefix, tt.kind, tt.files)
			c := modelCache{root: t.TempDir(), arts: arts, kind: tt.kind}
			dir, err := c.get(ctx, prefix, "m/"+want, want)
			if err != nil {
				t.Fatal(err)
			}
			for rel, body := range tt.files {
				if b, err := os.ReadFile(filepath.Join(dir, rel)); err != nil || string(b) != body {
					t.Fatalf("%s in the cache: %q, %v; want %q", rel, b, err, body)
				}
			}
			// Changed in the cache (a host process may write there): fetched again.
			for rel := range tt.files {
				if err := os.WriteFile(filepath.Join(dir, rel), []byte("changed"), 0o644); err != nil {
					t.Fatal(err)
				}
				break
			}
			if dir2, err := c.get(ctx, prefix, "m/"+want, want); err != nil || dir2 != dir {
				t.Fatalf("get after a change: %s, %v; want %s again", dir2, err, dir)
			}
			if got, err := ModelDigest(dir, tt.kind); err != nil || got != want {
				t.Fatalf("digest after the refetch: %s, %v; want %s", got, err, want)
			}
		})
	}

	t.Run("digest mismatch refused", func(t *testing.T) {
		prefix := artifact.ModelPrefix("default", "bad", 1)
		putModel(t, arts, prefix, api.ModelFileKind, map[string]string{"model.json": "tampered"})
		root := t.TempDir()
		c := modelCache{root: root, arts: arts, kind: api.ModelFileKind}
		want := strings.Repeat("0", 64)
		if _, err := c.get(ctx, prefix, "bad/"+want, want); !errors.Is(err, errModelDigest) {
			t.Fatalf("get of files that do not match: %v, want errModelDigest", err)
		}
		// Nothing of it is left in the cache to be used.
		if _, err := os.Stat(filepath.Join(root, "bad", want)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("cache folder of a refused version: %v, want none", err)
		}
		left, _ := os.ReadDir(filepath.Join(root, "bad"))
		if len(left) != 0 {
			t.Fatalf("cache left %v behind", left)
		}
	})

	t.Run("missing version refused", func(t *testing.T) {
		c := modelCache{root: t.TempDir(), arts: arts, kind: api.ModelFileKind}
		if _, err := c.get(ctx, artifact.ModelPrefix("default", "none", 1), "none/x", "x"); !errors.Is(err, artifact.ErrNotFound) {
			t.Fatalf("get of a version with no files: %v, want artifact.ErrNotFound", err)
		}
	})
}

// TestModelDigestIsTheDocumentedCommand: the folder digest is what the
// shell line of api.ModelVersion.SHA256 prints.
func TestModelDigestIsTheDocumentedCommand(t *testing.T) {
	if _, err := exec.LookPath("sha256sum"); err != nil {
		t.Skip("no sha256sum here")
	}
	dir := t.TempDir()
	for rel, body := range map[string]string{"model.json": "{}", "a/b.bin": "bbb", "a-b.txt": "x", "Z": "upper"} {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("sh", "-c", `find . -type f -print0 | sed -z 's|^\./||' | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum`)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Fields(string(out))[0]
	if got, err := ModelDigest(dir, api.ModelFolderKind); err != nil || got != want {
		t.Fatalf("ModelDigest = %s, %v; the documented command prints %s", got, err, want)
	}
}

// TestJobTokenTTL: a service job's token lives serviceTokenTTL (renewed
// while it runs), a batch job's its timeout and an hour.
func TestJobTokenTTL(t *testing.T) {
	if got := jobTokenTTL(api.JobSpec{Service: &api.Service{}}); got != serviceTokenTTL {
		t.Errorf("service job's token TTL %s, want %s", got, serviceTokenTTL)
	}
	if got, want := jobTokenTTL(api.JobSpec{TimeoutSeconds: 60}), 61*60; int(got.Seconds()) != want {
		t.Errorf("batch job's token TTL %s, want %ds", got, want)
	}
}

// TestPortCheckDue: the port check runs on every probe until the replica is
// ready and while another program holds its port, then once every
// portRecheckEvery (it reads all of /proc/net/tcp).
func TestPortCheckDue(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	r := &replica{w: &Worker{now: func() time.Time { return now }}}
	if !r.portCheckDue(false) {
		t.Error("not ready yet: want a check")
	}
	r.portCheckedAt = now
	if r.portCheckDue(true) {
		t.Error("ready, checked just now: want no check")
	}
	now = now.Add(portRecheckEvery - time.Second)
	if r.portCheckDue(true) {
		t.Error("ready, checked less than portRecheckEvery ago: want no check")
	}
	now = now.Add(time.Second)
	if !r.portCheckDue(true) {
		t.Error("ready, checked portRecheckEvery ago: want a check")
	}
	r.portCheckedAt, r.takenSince = now, now
	if !r.portCheckDue(true) {
		t.Error("port held by another program: want a check on every probe")
	}
}

// pidsFunc is a workloadPIDer from a function.
type pidsFunc func() (int, error)

func (f pidsFunc) workloadPID(context.Context, string, int) (int, error) { return f() }

// TestOwnsPortUnsureIsNotTaken: when the executor cannot name the
// workload's process (podman's inspect timing out on a loaded machine),
// the replica is not ready, but that is no sign of another program: the
// clock that fails the replica does not start. A listener the workload
// does not hold is taken.
func TestOwnsPortUnsureIsNotTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	w := &Worker{now: func() time.Time { return now }, logger: slog.New(slog.DiscardHandler)}
	r := &replica{w: w, ip: netip.MustParseAddr("127.0.0.1"), port: ln.Addr().(*net.TCPAddr).Port,
		pids: pidsFunc(func() (int, error) { return 0, context.DeadlineExceeded })}
	var log bytes.Buffer
	if ok, taken := r.ownsPort(context.Background(), &log); ok || taken {
		t.Fatalf("executor did not answer: ok %v taken %v, want neither", ok, taken)
	}
	if !r.takenSince.IsZero() || log.Len() != 0 {
		t.Fatalf("executor did not answer: taken since %v, job log %q: want no taken clock and no note", r.takenSince, log.String())
	}
	r.pids = noPIDs{}
	if ok, taken := r.ownsPort(context.Background(), &log); ok || !taken {
		t.Fatalf("no workload process, a listener on the port: ok %v taken %v, want taken", ok, taken)
	}
	if r.takenSince != now || !strings.Contains(log.String(), "another program took the port") {
		t.Fatalf("taken since %v, job log %q: want the clock started and a note", r.takenSince, log.String())
	}
	// This test process holds the listener: named as the workload, it owns it.
	r.pids = pidsFunc(func() (int, error) { return os.Getpid(), nil })
	if ok, taken := r.ownsPort(context.Background(), &log); !ok || taken {
		t.Fatalf("the workload holds the listener: ok %v taken %v, want ok", ok, taken)
	}
}
