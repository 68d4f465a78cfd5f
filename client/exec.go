package client

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/jobgate/jobgate/api"
)

// ExecError is how an exec session that had started ended without an exit
// code: the job ended under it, the command could not start or ran past its
// timeout, the worker went away. Code is the gateway's stable code, such as
// "timeout" or "job_not_running".
type ExecError struct {
	Code    string
	Message string
}

func (e *ExecError) Error() string { return e.Code + ": " + e.Message }

// Exec runs argv beside a running job (POST /v1/jobs/{id}/exec): in its
// container, or for a host-process job on its worker, with the job's
// environment and working folder. It copies the command's stdout and
// stderr to the given writers as they come (a nil writer discards) and
// returns its exit code. The command gets the gateway's default timeout
// (300 s); see ExecWith for another.
//
// An *Error means the gateway refused: 404 for a job it does not know, 409
// for one that is not running, 403 for a token without the submit scope. An
// *ExecError means the session failed after it started. With any error the
// exit code is -1. Canceling ctx stops the command.
func (c *Client) Exec(ctx context.Context, id string, argv []string, stdout, stderr io.Writer) (exitCode int, err error) {
	return c.ExecWith(ctx, id, api.ExecRequest{Command: argv}, stdout, stderr)
}

// ExecWith is Exec with every field of the request, such as its timeout.
func (c *Client) ExecWith(ctx context.Context, id string, req api.ExecRequest, stdout, stderr io.Writer) (int, error) {
	p, err := jobPath(id, "/exec")
	if err != nil {
		return -1, err
	}
	body, err := json.Marshal(req)
	if err != nil {
		return -1, fmt.Errorf("encode request: %w", err)
	}
	h := http.Header{"Accept": {"application/x-ndjson"}, "Content-Type": {"application/json"}}
	resp, err := c.send(ctx, http.MethodPost, p, nil, h, body)
	if err != nil {
		return -1, err
	}
	defer closeBody(resp.Body)
	dec := json.NewDecoder(resp.Body)
	for {
		var l api.ExecLine
		if err := dec.Decode(&l); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			if ctx.Err() != nil {
				err = ctx.Err()
			}
			return -1, fmt.Errorf("exec in job %s: output ended before the exit code: %w", id, err)
		}
		switch {
		case l.Error != nil:
			return -1, &ExecError{Code: string(l.Error.Code), Message: l.Error.Message}
		case l.ExitCode != nil:
			return *l.ExitCode, nil
		}
		w := stdout
		if l.Stream == "stderr" {
			w = stderr
		}
		data := []byte(l.Data)
		if l.Encoding == "base64" {
			if data, err = base64.StdEncoding.DecodeString(l.Data); err != nil {
				return -1, fmt.Errorf("exec in job %s: bad base64 output chunk: %w", id, err)
			}
		}
		if w != nil {
			if _, err := w.Write(data); err != nil {
				return -1, fmt.Errorf("exec in job %s: write %s: %w", id, l.Stream, err)
			}
		}
	}
}
