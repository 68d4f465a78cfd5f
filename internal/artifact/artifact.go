// Package artifact stores what jobs leave behind — logs at rest now, outputs
// and models later — under slash-separated keys. Dir keeps them in a folder;
// an S3-compatible bucket can implement Store for fleets of workers.
package artifact

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// ErrNotFound is returned for a key that holds nothing.
var ErrNotFound = errors.New("artifact not found")

// Store keeps blobs under keys like "jobs/ID/logs/000001.log".
type Store interface {
	Put(ctx context.Context, key string, r io.Reader) error
	Open(ctx context.Context, key string) (io.ReadCloser, error)
	// List returns the keys under prefix, sorted.
	List(ctx context.Context, prefix string) ([]string, error)
}

// Dir is a Store in a local folder. Writes go to a temporary file first and
// are renamed into place, so a reader never sees half a blob.
type Dir struct{ Root string }

var _ Store = Dir{}

// cleanKey rejects keys that could leave Root.
func cleanKey(key string) (string, error) {
	if key == "" || strings.HasPrefix(key, "/") || strings.Contains(key, "\\") || path.Clean(key) != key ||
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
