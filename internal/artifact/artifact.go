// Package artifact stores what jobs leave behind — logs at rest, and the
// files a job writes to its outputs folder — under slash-separated keys. Dir
// keeps them in a folder (shared by every gateway and worker); S3 keeps them
// in an S3-compatible bucket, for fleets of workers that share no folder.
// Open picks one from a URL.
package artifact

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// ErrNotFound is returned for a key that holds nothing.
var ErrNotFound = errors.New("artifact not found")

// Store keeps blobs under keys like "jobs/ID/logs/000001.log".
type Store interface {
	Put(ctx context.Context, key string, r io.Reader) error
	Open(ctx context.Context, key string) (io.ReadCloser, error)
	// List returns the keys under prefix, sorted.
	List(ctx context.Context, prefix string) ([]string, error)
	// Stat describes the blob at key; ErrNotFound when there is none.
	Stat(ctx context.Context, key string) (Info, error)
}

// Info describes one blob.
type Info struct {
	Size    int64
	ModTime time.Time
	// SHA256 is the hex SHA-256 of the blob's bytes that the store
	// recorded when it was put; empty where it records none (Dir).
	SHA256 string
}

// Seeker is a Store that can open a blob for random access, so that HTTP
// range requests can be answered. A Store without it is streamed whole.
type Seeker interface {
	// OpenSeeker opens key for reading at any offset; ErrNotFound when it
	// holds nothing.
	OpenSeeker(ctx context.Context, key string) (io.ReadSeekCloser, Info, error)
}

// Deleter is a Store that can remove blobs: the model registry removes a
// deleted version's files with it. A Store without it keeps them.
type Deleter interface {
	// DeletePrefix removes every blob below prefix (a folder key ending
	// in "/"); nothing there is no error.
	DeletePrefix(ctx context.Context, prefix string) error
}

// Dir is a Store in a local folder. Writes go to a temporary file first and
// are renamed into place, so a reader never sees half a blob.
type Dir struct{ Root string }

var (
	_ Store   = Dir{}
	_ Seeker  = Dir{}
	_ Deleter = Dir{}
)

// CheckKey says why key is not one a Store takes (nil when it is): keys are
// clean relative slash-separated paths without backslashes. Callers that
// build keys from names they do not control check them first.
func CheckKey(key string) error {
	_, err := cleanKey(key)
	return err
}

// cleanKey rejects keys that could leave Root, and "." (Root itself: a Put
// of it would write its temporary file beside Root, a DeletePrefix of it
// would empty the whole store).
func cleanKey(key string) (string, error) {
	if key == "" || key == "." || strings.HasPrefix(key, "/") || strings.Contains(key, "\\") || path.Clean(key) != key ||
		key == ".." || strings.HasPrefix(key, "../") {
		return "", fmt.Errorf("artifact key %q: not a clean relative path", key)
	}
	return key, nil
}

// Put writes r to key.
func (d Dir) Put(ctx context.Context, key string, r io.Reader) error {
	k, err := cleanKey(key)
	if err != nil {
		return err
	}
	dst := filepath.Join(d.Root, filepath.FromSlash(k))
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".put-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, r); err != nil {
		tmp.Close()
		return fmt.Errorf("write artifact %s: %w", key, err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), dst)
}

// Open reads key.
func (d Dir) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	k, err := cleanKey(key)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(d.Root, filepath.FromSlash(k)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	return f, err
}

// Stat describes key; a folder is not a blob (ErrNotFound).
func (d Dir) Stat(ctx context.Context, key string) (Info, error) {
	k, err := cleanKey(key)
	if err != nil {
		return Info{}, err
	}
	fi, err := os.Stat(filepath.Join(d.Root, filepath.FromSlash(k)))
	if errors.Is(err, fs.ErrNotExist) || err == nil && !fi.Mode().IsRegular() {
		return Info{}, ErrNotFound
	}
	if err != nil {
		return Info{}, err
	}
	return Info{Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// OpenSeeker opens key for random access; a folder is not a blob (ErrNotFound).
func (d Dir) OpenSeeker(ctx context.Context, key string) (io.ReadSeekCloser, Info, error) {
	k, err := cleanKey(key)
	if err != nil {
		return nil, Info{}, err
	}
	f, err := os.Open(filepath.Join(d.Root, filepath.FromSlash(k)))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, Info{}, ErrNotFound
	}
	if err != nil {
		return nil, Info{}, err
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, Info{}, cmp.Or(err, ErrNotFound)
	}
	return f, Info{Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

// DeletePrefix removes the folder of prefix and everything in it.
func (d Dir) DeletePrefix(ctx context.Context, prefix string) error {
	p, err := cleanKey(strings.TrimSuffix(prefix, "/"))
	if err != nil {
		return err
	}
	return os.RemoveAll(filepath.Join(d.Root, filepath.FromSlash(p)))
}

// List returns the keys below prefix (a folder key ending in "/"), sorted.
func (d Dir) List(ctx context.Context, prefix string) ([]string, error) {
	p, err := cleanKey(strings.TrimSuffix(prefix, "/"))
	if err != nil {
		return nil, err
	}
	root := filepath.Join(d.Root, filepath.FromSlash(p))
	var keys []string
	err = filepath.WalkDir(root, func(fp string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if e.IsDir() || strings.HasPrefix(e.Name(), ".put-") {
			return nil
		}
		rel, err := filepath.Rel(d.Root, fp)
		if err != nil {
			return err
		}
		keys = append(keys, filepath.ToSlash(rel))
		return nil
	})
	sort.Strings(keys)
	return keys, err
}

// LogKey is where the at-rest log of one attempt of a job lives.
func LogKey(jobID string, attempt int) string {
	return fmt.Sprintf("jobs/%s/logs/%06d.log", jobID, attempt)
}

// LogPrefix holds all attempts' logs of a job.
func LogPrefix(jobID string) string { return "jobs/" + jobID + "/logs/" }

// OutputPrefix holds the files a job wrote to its outputs folder
// (JOBGATE_OUTPUTS), each under its path relative to that folder.
func OutputPrefix(jobID string) string { return "jobs/" + jobID + "/outputs/" }

// ModelPrefix holds the files of version v of model name of workspace ws:
// the registry's own copy, which no job writes.
func ModelPrefix(ws, name string, v int) string {
	return fmt.Sprintf("models/%s/%s/%d/", ws, name, v)
}

// BatchScoreKey is where a batch-score job's results for file index of its
// plan live while the job runs (its checkpoint): one JSON-lines object per
// file, written whole, merged into the job's outputs at the end.
func BatchScoreKey(jobID string, index int) string {
	return fmt.Sprintf("jobs/%s/checkpoints/batch-score/%06d.jsonl", jobID, index)
}

// Open returns the store at u: a folder (a plain path or file:///path) is
// a Dir; s3://bucket/prefix is an S3 bucket below prefix, reached with o.
func Open(ctx context.Context, u string, o S3Options) (Store, error) {
	if u == "" {
		return nil, errors.New("artifact store: no URL or folder given")
	}
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return Dir{Root: u}, nil
	}
	switch scheme {
	case "file":
		p, err := url.PathUnescape(rest)
		if err != nil || !strings.HasPrefix(p, "/") {
			return nil, fmt.Errorf("artifact store %q: want file:///absolute/path", u)
		}
		return Dir{Root: p}, nil
	case "s3":
		bucket, prefix, _ := strings.Cut(rest, "/")
		if bucket == "" {
			return nil, fmt.Errorf("artifact store %q: want s3://bucket/prefix", u)
		}
		return NewS3(ctx, bucket, prefix, o)
	default:
		return nil, fmt.Errorf("artifact store %q: the scheme %q is not one of file:// and s3://", u, scheme)
	}
}
