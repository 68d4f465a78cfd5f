package webhook_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/jobgate/jobgate/internal/webhook"
)

func ExampleVerifyGitHub() {
	// GitHub's documented test values.
	secret := []byte("It's a Secret to Everybody")
	body := []byte("Hello, World!")
	header := "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

	fmt.Println(webhook.VerifyGitHub(secret, body, header))
	fmt.Println(webhook.VerifyGitHub(secret, []byte("Hello, World?"), header))
	// Output:
	// <nil>
	// bad webhook signature: X-Hub-Signature-256 does not match the body
}

func ExampleSender_Deliver() {
	secret := webhook.NewSecret()
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := webhook.VerifyStandard([]string{secret}, r.Header, body, time.Now(), 0); err != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer receiver.Close()

	// Loopback is refused by default; a dev setup allows it.
	sender, err := webhook.NewSender(webhook.SenderConfig{Policy: webhook.AddressPolicy{AllowLoopback: true}})
	if err != nil {
		panic(err)
	}
	a, err := sender.Deliver(context.Background(), receiver.URL, secret, "msg_01JABC",
		[]byte(`{"type":"job.succeeded"}`), func(a webhook.Attempt) {
			fmt.Println("attempt", a.Number, "status", a.StatusCode)
		})
	fmt.Println(a.StatusCode, err)
	// Output:
	// attempt 1 status 204
	// 204 <nil>
}

func ExampleValidateURL() {
	var policy webhook.AddressPolicy // public addresses only
	fmt.Println(webhook.ValidateURL("https://hooks.example.com/jobgate", policy))
	fmt.Println(webhook.ValidateURL("http://169.254.169.254/latest/meta-data/", policy))
	// Output:
	// <nil>
	// webhook address not allowed: 169.254.169.254 is link-local
}
