package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
)

// Scored is the answer of an inference request.
type Scored struct {
	// Body is the model server's answer as it sent it (V2 JSON, or the
	// binary tensor extension).
	Body []byte
	// ModelVersion says which version served it: "iris:2".
	ModelVersion string
	// ContentType is the answer's Content-Type.
	ContentType string
}

// Score sends an inference request (V2 JSON, POST /v2/models/{name}/infer,
// score scope) to deployment name through the scoring router at the
// client's base URL (`jobgate dev` serves /v2 on the API's address) and
// returns the answer. A non-2xx answer is an *Error whose Message is the
// router's or model server's {"error": ...}.
func (c *Client) Score(ctx context.Context, name string, body []byte) (*Scored, error) {
	return c.ScoreVersion(ctx, name, "", body)
}

// ScoreVersion is Score sent to one version of the deployment's models
// (POST /v2/models/{name}/versions/{version}/infer); "" is any version.
func (c *Client) ScoreVersion(ctx context.Context, name, version string, body []byte) (*Scored, error) {
	if c.baseErr != nil {
		return nil, c.baseErr
	}
	if name == "" {
		return nil, fmt.Errorf("score: empty deployment name")
	}
	p := "/v2/models/" + url.PathEscape(name)
	if version != "" {
		p += "/versions/" + url.PathEscape(version)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+p+"/infer", bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "jobgate-client")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer closeBody(resp.Body)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		var v2 struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(b, &v2) == nil && v2.Error != "" {
			return nil, &Error{StatusCode: resp.StatusCode, Message: v2.Error}
		}
		return nil, decodeError(&http.Response{StatusCode: resp.StatusCode, Body: io.NopCloser(bytes.NewReader(b))})
	}
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read answer of %s: %w", p, err)
	}
	return &Scored{Body: out, ModelVersion: resp.Header.Get("Jobgate-Model-Version"), ContentType: resp.Header.Get("Content-Type")}, nil
}
