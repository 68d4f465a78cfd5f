// Package secretbox encrypts workspace secrets at rest with AES-256-GCM. The
// key lives outside Redis (a file or an environment variable), so a copy of
// Redis or its AOF alone does not reveal a secret. Every ciphertext is bound to
// its workspace and name (additional data), so one cannot be moved to another.
package secretbox

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
)

// KeySize is the key length: AES-256.
const KeySize = 32

// Box seals and opens secrets. The zero value is unusable; use New.
type Box struct{ aead cipher.AEAD }

// New returns a Box for a 32-byte key.
func New(key []byte) (*Box, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secrets key: want %d bytes, got %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Box{aead: aead}, nil
}

// ParseKey decodes a base64 (standard or URL) key.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil && len(k) == KeySize {
			return k, nil
		}
	}
	return nil, fmt.Errorf("secrets key: want %d bytes, base64-encoded (make one with: head -c 32 /dev/urandom | base64)", KeySize)
}

// LoadKeyFile reads a base64 key from path.
func LoadKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("secrets key file: %w", err)
	}
	k, err := ParseKey(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// EnsureKeyFile loads the key at path, creating a new random one (mode 0600)
// when the file does not exist.
func EnsureKeyFile(path string) ([]byte, error) {
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		k := make([]byte, KeySize)
		if _, err := rand.Read(k); err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(k)+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("write secrets key: %w", err)
		}
		return k, nil
	}
	return LoadKeyFile(path)
}

func aad(workspace, name string) []byte { return []byte(workspace + "\x00" + name) }

// Seal encrypts value for secret name of workspace.
func (b *Box) Seal(workspace, name string, value []byte) ([]byte, error) {
	nonce := make([]byte, b.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	return b.aead.Seal(nonce, nonce, value, aad(workspace, name)), nil
}

// ErrDecrypt means a ciphertext does not open under this key for this
// workspace and name: the key changed, or the data was tampered with.
var ErrDecrypt = errors.New("secret does not decrypt with this key")

// Open decrypts what Seal returned for the same workspace and name.
func (b *Box) Open(workspace, name string, sealed []byte) ([]byte, error) {
	n := b.aead.NonceSize()
	if len(sealed) < n {
		return nil, ErrDecrypt
	}
	out, err := b.aead.Open(nil, sealed[:n], sealed[n:], aad(workspace, name))
	if err != nil {
		return nil, ErrDecrypt
	}
	return out, nil
}
