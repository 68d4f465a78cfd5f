package gateway

import (
	"context"
	"net/http"
	"strings"
	"testing"
)

// TestSecretValuesRefuseControlCharacters: NUL (no environment variable can
// carry it) and other control characters are refused; multi-line values
// with tabs and CRLF are fine.
func TestSecretValuesRefuseControlCharacters(t *testing.T) {
	f := newFixture(t)
	for _, v := range []string{`a\u0000b`, `\u0000`, `x\u001b[31m`, `x\u007f`, `line1\u000bline2`} {
		code, body := f.call("POST", "/v1/secrets", systemToken, `{"name":"bad","value":"`+v+`"}`)
		if code != http.StatusUnprocessableEntity || !strings.HasPrefix(errMessage(body), "value") {
			t.Errorf("value %s: %d %s, want 422 naming value", v, code, body)
		}
	}
	names, _ := f.st.SecretNames(context.Background(), DefaultWorkspace)
	if len(names) != 0 {
		t.Fatalf("refused secrets were stored: %v", names)
	}
	f.mustCall("POST", "/v1/secrets", systemToken, `{"name":"pem","value":"-----BEGIN KEY-----\r\nMIIB\tx\n-----END KEY-----\n"}`, nil)
}
