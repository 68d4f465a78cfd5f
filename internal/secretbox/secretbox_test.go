package secretbox_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/jobgate/jobgate/internal/secretbox"
)

func TestSealOpenIsBoundToWorkspaceAndName(t *testing.T) {
	t.Parallel()
	key, err := secretbox.EnsureKeyFile(filepath.Join(t.TempDir(), "key"))
	if err != nil {
		t.Fatal(err)
	}
	box, err := secretbox.New(key)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := box.Seal("team-a", "db_pass", []byte("hunter2"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte("hunter2")) {
		t.Fatal("plaintext visible in the ciphertext")
	}
	got, err := box.Open("team-a", "db_pass", sealed)
	if err != nil || string(got) != "hunter2" {
		t.Fatalf("open: %q, %v", got, err)
	}
	tests := []struct{ name, ws, secret string }{
		{"other workspace", "team-b", "db_pass"},
		{"other name", "team-a", "api_key"},
	}
	for _, tt := range tests {
		if _, err := box.Open(tt.ws, tt.secret, sealed); !errors.Is(err, secretbox.ErrDecrypt) {
			t.Errorf("%s: %v, want ErrDecrypt", tt.name, err)
		}
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := box.Open("team-a", "db_pass", sealed); !errors.Is(err, secretbox.ErrDecrypt) {
		t.Errorf("tampered: %v, want ErrDecrypt", err)
	}
}

func TestKeyFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "key")
	k1, err := secretbox.EnsureKeyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := secretbox.EnsureKeyFile(path)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("second load gave another key: %v", err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, want 0600", fi.Mode().Perm())
	}
	if _, err := secretbox.ParseKey("c2hvcnQ="); err == nil {
		t.Fatal("short key accepted")
	}
}
