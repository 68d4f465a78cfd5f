package artifact_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/minio/minio-go/v7"

	"github.com/jobgate/jobgate/internal/artifact"
	"github.com/jobgate/jobgate/internal/testenv"
)

// conformancePartSize is the S3 store's part size in these tests: S3's
// minimum, so a blob of a few parts exercises the multipart path.
const conformancePartSize = 5 << 20

// TestDirConformance runs the shared store tests against a folder.
func TestDirConformance(t *testing.T) {
	testStore(t, artifact.Dir{Root: t.TempDir()}, false)
}

// TestS3Conformance runs the same tests against a real SeaweedFS.
func TestS3Conformance(t *testing.T) {
	s3 := testenv.S3(t)
	testStore(t, openS3(t, s3), true)
}

func openS3(t *testing.T, s3 *testenv.S3Service) artifact.Store {
	t.Helper()
	st, err := artifact.Open(context.Background(), s3.URL, artifact.S3Options{
		Endpoint: s3.Endpoint, Region: s3.Region, PathStyle: true,
		AccessKey: s3.AccessKey, SecretKey: s3.SecretKey, PartSize: conformancePartSize,
	})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func put(t *testing.T, st artifact.Store, key string, b []byte) {
	t.Helper()
	if err := st.Put(context.Background(), key, bytes.NewReader(b)); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func read(t *testing.T, st artifact.Store, key string) []byte {
	t.Helper()
	r, err := st.Open(context.Background(), key)
	if err != nil {
		t.Fatalf("Open(%q): %v", key, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("read %q: %v", key, err)
	}
	return b
}

func randomBytes(n int, seed uint64) []byte {
	b := make([]byte, n)
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)})
	_, _ = rng.Read(b)
	return b
}

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// testStore is the behaviour every Store has. records says the store
// records a SHA-256 (Info.SHA256).
func testStore(t *testing.T, st artifact.Store, records bool) {
	ctx := context.Background()
	seeker, ok := st.(artifact.Seeker)
	if !ok {
		t.Fatal("not a Seeker")
	}
	deleter, ok := st.(artifact.Deleter)
	if !ok {
		t.Fatal("not a Deleter")
	}

	t.Run("put open stat", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			body []byte
		}{
			{"empty", nil},
			{"small", []byte("hello\n")},
			{"one part exactly", randomBytes(conformancePartSize, 1)},
			{"parts", randomBytes(2*conformancePartSize+12345, 2)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				key := "rt/" + strings.ReplaceAll(tc.name, " ", "-") + ".bin"
				before := time.Now().Add(-time.Minute)
				put(t, st, key, tc.body)
				if got := read(t, st, key); !bytes.Equal(got, tc.body) {
					t.Fatalf("read back %d bytes (sha %s), put %d (sha %s)", len(got), sum(got), len(tc.body), sum(tc.body))
				}
				info, err := st.Stat(ctx, key)
				if err != nil {
					t.Fatal(err)
				}
				if info.Size != int64(len(tc.body)) || info.ModTime.Before(before) {
					t.Errorf("Stat = %+v, want size %d and a modification time after %v", info, len(tc.body), before)
				}
				if want := sum(tc.body); records && info.SHA256 != want {
					t.Errorf("Stat SHA256 = %q, want %q", info.SHA256, want)
				}
			})
		}
	})

	t.Run("list", func(t *testing.T) {
		keys := []string{"ls/b", "ls/a/2", "ls/a/10", "ls/a-z", "ls/c/d/e", "lsx/no"}
		for _, k := range keys {
			put(t, st, k, []byte(k))
		}
		got, err := st.List(ctx, "ls/")
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"ls/a-z", "ls/a/10", "ls/a/2", "ls/b", "ls/c/d/e"}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("List(ls/) (-want +got):\n%s", diff)
		}
		if got, err := st.List(ctx, "ls/a"); err != nil || !cmp.Equal(got, []string{"ls/a/10", "ls/a/2"}) {
			t.Errorf("List(ls/a) = %q, %v; want the folder's two keys", got, err)
		}
		if got, err := st.List(ctx, "nothing/here/"); err != nil || len(got) != 0 {
			t.Errorf("List(nothing/here/) = %q, %v; want none, no error", got, err)
		}
	})

	t.Run("not found", func(t *testing.T) {
		put(t, st, "nf/folder/blob", []byte("x"))
		for _, key := range []string{"nf/missing", "nf/folder"} {
			if _, err := st.Stat(ctx, key); !errors.Is(err, artifact.ErrNotFound) {
				t.Errorf("Stat(%q) = %v, want ErrNotFound", key, err)
			}
			if r, err := st.Open(ctx, key); !errors.Is(err, artifact.ErrNotFound) {
				if err == nil {
					r.Close()
				}
				t.Errorf("Open(%q) = %v, want ErrNotFound", key, err)
			}
			if r, _, err := seeker.OpenSeeker(ctx, key); !errors.Is(err, artifact.ErrNotFound) {
				if err == nil {
					r.Close()
				}
				t.Errorf("OpenSeeker(%q) = %v, want ErrNotFound", key, err)
			}
		}
	})

	t.Run("bad keys", func(t *testing.T) {
		for _, key := range []string{"", ".", "/abs", "../up", "a/../../b", "a//b", `a\b`, "a/./b", "a/"} {
			ops := map[string]error{
				"Put":  st.Put(ctx, key, strings.NewReader("x")),
				"Stat": func() error { _, err := st.Stat(ctx, key); return err }(),
				"Open": func() error { _, err := st.Open(ctx, key); return err }(),
				"OpenSeeker": func() error {
					_, _, err := seeker.OpenSeeker(ctx, key)
					return err
				}(),
			}
			if key != "a/" { // a folder key ending in "/" is what List and DeletePrefix take
				ops["List"] = func() error { _, err := st.List(ctx, key); return err }()
				ops["DeletePrefix"] = deleter.DeletePrefix(ctx, key)
			}
			for op, err := range ops {
				if err == nil || errors.Is(err, artifact.ErrNotFound) {
					t.Errorf("%s(%q) = %v, want a bad-key error", op, key, err)
				}
			}
		}
	})

	t.Run("ranges", func(t *testing.T) {
		body := randomBytes(3*conformancePartSize/2, 3)
		put(t, st, "rg/blob", body)
		f, info, err := seeker.OpenSeeker(ctx, "rg/blob")
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if info.Size != int64(len(body)) {
			t.Fatalf("OpenSeeker size %d, want %d", info.Size, len(body))
		}
		for _, r := range []struct{ off, n int64 }{{0, 10}, {int64(len(body)) - 7, 7}, {1 << 20, 3 << 20}, {5, 1}, {0, int64(len(body))}} {
			if _, err := f.Seek(r.off, io.SeekStart); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, r.n)
			if _, err := io.ReadFull(f, got); err != nil {
				t.Fatalf("read %d at %d: %v", r.n, r.off, err)
			}
			if !bytes.Equal(got, body[r.off:r.off+r.n]) {
				t.Errorf("read %d at %d: wrong bytes", r.n, r.off)
			}
		}
		if end, err := f.Seek(0, io.SeekEnd); err != nil || end != int64(len(body)) {
			t.Errorf("Seek(0, end) = %d, %v; want %d", end, err, len(body))
		}
		if n, err := f.Read(make([]byte, 1)); n != 0 || err != io.EOF {
			t.Errorf("Read at the end = %d, %v; want 0, EOF", n, err)
		}
		// As the gateway serves it: HTTP range requests.
		for _, rng := range []string{"bytes=100-199", "bytes=-50", "bytes=7000000-"} {
			req := httptest.NewRequest(http.MethodGet, "/blob", nil)
			req.Header.Set("Range", rng)
			rec := httptest.NewRecorder()
			f, info, err := seeker.OpenSeeker(ctx, "rg/blob")
			if err != nil {
				t.Fatal(err)
			}
			http.ServeContent(rec, req, "blob", info.ModTime, f)
			f.Close()
			var start, end int64
			switch {
			case strings.HasPrefix(rng, "bytes=-"):
				fmt.Sscanf(rng, "bytes=-%d", &start)
				start, end = int64(len(body))-start, int64(len(body))
			case strings.HasSuffix(rng, "-"):
				fmt.Sscanf(rng, "bytes=%d-", &start)
				end = int64(len(body))
			default:
				fmt.Sscanf(rng, "bytes=%d-%d", &start, &end)
				end++
			}
			if rec.Code != http.StatusPartialContent || !bytes.Equal(rec.Body.Bytes(), body[start:end]) {
				t.Errorf("Range %s: %d with %d bytes, want 206 with bytes %d-%d", rng, rec.Code, rec.Body.Len(), start, end-1)
			}
		}
	})

	t.Run("delete prefix", func(t *testing.T) {
		for _, k := range []string{"dp/a/1", "dp/a/sub/2", "dp/a-keep", "dp/ab/keep"} {
			put(t, st, k, []byte(k))
		}
		if err := deleter.DeletePrefix(ctx, "dp/a/"); err != nil {
			t.Fatal(err)
		}
		got, err := st.List(ctx, "dp/")
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"dp/a-keep", "dp/ab/keep"}, got); diff != "" {
			t.Errorf("after DeletePrefix(dp/a/) (-want +got):\n%s", diff)
		}
		if err := deleter.DeletePrefix(ctx, "dp/none/"); err != nil {
			t.Errorf("DeletePrefix of nothing: %v", err)
		}
	})

	t.Run("overwrite", func(t *testing.T) {
		put(t, st, "ow/blob", randomBytes(2*conformancePartSize, 4))
		second := []byte("short now")
		put(t, st, "ow/blob", second)
		if got := read(t, st, "ow/blob"); !bytes.Equal(got, second) {
			t.Errorf("after overwrite read %d bytes, want %q", len(got), second)
		}
		if info, err := st.Stat(ctx, "ow/blob"); err != nil || info.Size != int64(len(second)) || records && info.SHA256 != sum(second) {
			t.Errorf("Stat after overwrite = %+v, %v", info, err)
		}
	})

	t.Run("failed put leaves nothing", func(t *testing.T) {
		for _, n := range []int{100, 2*conformancePartSize + 1} {
			key := fmt.Sprintf("fp/%d", n)
			r := io.MultiReader(bytes.NewReader(randomBytes(n, 5)), iotestErrReader{})
			if err := st.Put(ctx, key, r); err == nil {
				t.Errorf("Put of a reader that fails after %d bytes: no error", n)
			}
			if _, err := st.Stat(ctx, key); !errors.Is(err, artifact.ErrNotFound) {
				t.Errorf("Stat after a failed Put of %d bytes = %v, want ErrNotFound", n, err)
			}
		}
	})

	t.Run("readers never see half a blob", func(t *testing.T) {
		// Blobs of uniform bytes, each value its own length: a reader
		// must see one of them whole. The larger ones are put in parts.
		blob := func(v byte) []byte {
			return bytes.Repeat([]byte{v}, 1000+int(v)*600_000)
		}
		put(t, st, "cc/blob", blob(0))
		var wg sync.WaitGroup
		stop := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; i <= 12; i++ {
				if err := st.Put(ctx, "cc/blob", bytes.NewReader(blob(byte(i)))); err != nil {
					t.Errorf("Put: %v", err)
				}
			}
			close(stop)
		}()
		var reads, failed int
		var mu sync.Mutex
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					select {
					case <-stop:
						return
					default:
					}
					r, err := st.Open(ctx, "cc/blob")
					if err != nil {
						t.Errorf("Open: %v", err)
						return
					}
					b, err := io.ReadAll(r)
					r.Close()
					mu.Lock()
					reads++
					if err != nil {
						// A blob replaced under a reader may fail it
						// (S3 pins reads to one version); never mix.
						failed++
						mu.Unlock()
						continue
					}
					mu.Unlock()
					if len(b) == 0 || !bytes.Equal(b, blob(b[0])) {
						t.Errorf("read %d bytes that are no whole blob", len(b))
						return
					}
				}
			}()
		}
		wg.Wait()
		t.Logf("%d whole reads, %d failed by an overwrite", reads-failed, failed)
	})
}

type iotestErrReader struct{}

func (iotestErrReader) Read([]byte) (int, error) { return 0, errors.New("source broke") }

// TestS3Checksum: a blob whose bytes do not match its recorded SHA-256
// fails its whole read at the end, short of its last bytes; a range read
// is not checked.
func TestS3Checksum(t *testing.T) {
	s3 := testenv.S3(t)
	st := openS3(t, s3)
	ctx := context.Background()
	body := randomBytes(100_000, 6)
	// Written past the store: right bytes, a wrong digest.
	_, err := s3.Client(t).PutObject(ctx, s3.Bucket, s3.Prefix+"/ck/blob", bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{
		UserMetadata: map[string]string{"Jobgate-Sha256": sum([]byte("other"))},
	})
	if err != nil {
		t.Fatal(err)
	}
	r, err := st.Open(ctx, "ck/blob")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if !errors.Is(err, artifact.ErrChecksum) || len(got) >= len(body) {
		t.Errorf("read of a blob with a wrong digest: %d bytes, %v; want ErrChecksum short of %d bytes", len(got), err, len(body))
	}
	f, _, err := st.(artifact.Seeker).OpenSeeker(ctx, "ck/blob")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Seek(10, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(f); err != nil || !bytes.Equal(b, body[10:]) {
		t.Errorf("range read to the end: %d bytes, %v; want the bytes unchecked", len(b), err)
	}
	// And one the store put verifies.
	put(t, st, "ck/good", body)
	if got := read(t, st, "ck/good"); !bytes.Equal(got, body) {
		t.Error("good blob read back wrong")
	}
}

func TestS3CredentialsErrorNamesFlags(t *testing.T) {
	_, err := artifact.NewS3(context.Background(), "bucket", "", artifact.S3Options{Endpoint: "http://127.0.0.1:1", AccessKey: "a"})
	if err == nil {
		t.Fatal("NewS3 without a secret key: no error")
	}
	for _, want := range []string{"--s3-access-key", "--s3-secret-key", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
}

// s3Proxy is a reverse proxy in front of a real S3 server that records the
// requests for one object and can cut a response's body short.
type s3Proxy struct {
	mu   sync.Mutex
	reqs []string // "METHOD range if-match"
	// cutAfter, when > 0, ends the next GET's body with an error after that
	// many bytes (the connection drops).
	cutAfter int64
}

func startS3Proxy(t *testing.T, endpoint, object string) (*s3Proxy, string) {
	t.Helper()
	target, err := url.Parse(endpoint)
	if err != nil {
		t.Fatal(err)
	}
	p := &s3Proxy{}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(resp *http.Response) error {
		req := resp.Request
		if !strings.HasSuffix(req.URL.Path, object) {
			return nil
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		p.reqs = append(p.reqs, fmt.Sprintf("%s %s %s", req.Method, req.Header.Get("Range"), req.Header.Get("If-Match")))
		if req.Method == http.MethodGet && p.cutAfter > 0 {
			resp.Body = &cutBody{rc: resp.Body, left: p.cutAfter}
			p.cutAfter = 0
		}
		return nil
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return p, srv.URL
}

func (p *s3Proxy) requests() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := p.reqs
	p.reqs = nil
	return out
}

type cutBody struct {
	rc   io.ReadCloser
	left int64
}

func (c *cutBody) Read(b []byte) (int, error) {
	if c.left <= 0 {
		return 0, errors.New("cut")
	}
	if int64(len(b)) > c.left {
		b = b[:c.left]
	}
	n, err := c.rc.Read(b)
	c.left -= int64(n)
	return n, err
}

func (c *cutBody) Close() error { return c.rc.Close() }

// A ranged read through OpenSeeker is a HEAD and one GET from the range's
// start, pinned to the ETag; no GET from byte 0 is started and dropped.
// After a body breaks, the next Read resumes with a new GET where the
// last one stopped instead of reading the broken body again.
func TestS3RangedReadRequests(t *testing.T) {
	s3 := testenv.S3(t)
	ctx := context.Background()
	body := randomBytes(1<<20, 7)
	put(t, openS3(t, s3), "rr/blob", body)
	proxy, endpoint := startS3Proxy(t, s3.Endpoint, "/rr/blob")
	st, err := artifact.Open(ctx, s3.URL, artifact.S3Options{
		Endpoint: endpoint, Region: s3.Region, PathStyle: true,
		AccessKey: s3.AccessKey, SecretKey: s3.SecretKey, PartSize: conformancePartSize,
	})
	if err != nil {
		t.Fatal(err)
	}
	f, info, err := st.(artifact.Seeker).OpenSeeker(ctx, "rr/blob")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if info.Size != int64(len(body)) {
		t.Fatalf("size %d, want %d", info.Size, len(body))
	}
	const off = 1000
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 100)
	if _, err := io.ReadFull(f, got); err != nil || !bytes.Equal(got, body[off:off+100]) {
		t.Fatalf("read 100 at %d: %v, right bytes %v", off, err, bytes.Equal(got, body[off:off+100]))
	}
	reqs := proxy.requests()
	if len(reqs) != 2 || !strings.HasPrefix(reqs[0], "HEAD ") || !strings.HasPrefix(reqs[1], fmt.Sprintf("GET bytes=%d- ", off)) || strings.HasSuffix(reqs[1], " ") {
		t.Errorf("requests for a ranged read: %q; want a HEAD, then one GET from byte %d with If-Match", reqs, off)
	}

	// A body cut short: the Read fails, and the next one resumes.
	proxy.mu.Lock()
	proxy.cutAfter = 5000
	proxy.mu.Unlock()
	const off2 = 200_000
	if _, err := f.Seek(off2, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	var rest []byte
	buf := make([]byte, 32<<10)
	failed := false
	for {
		n, err := f.Read(buf)
		rest = append(rest, buf[:n]...)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if failed {
				t.Fatalf("second failure after %d bytes: %v", len(rest), err)
			}
			failed = true
		}
	}
	if !failed {
		t.Error("the cut body gave no error")
	}
	if !bytes.Equal(rest, body[off2:]) {
		t.Errorf("resumed read: %d bytes, want the %d from %d", len(rest), len(body)-off2, off2)
	}
	reqs = proxy.requests()
	if len(reqs) != 2 || !strings.HasPrefix(reqs[0], fmt.Sprintf("GET bytes=%d- ", off2)) || !strings.HasPrefix(reqs[1], "GET bytes=") {
		t.Errorf("requests for a cut and resumed read: %q; want two ranged GETs", reqs)
	}
}
