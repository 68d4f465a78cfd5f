package worker

import (
	"context"
	"errors"
	"io"
	"net/http"

	"github.com/jobgate/jobgate/api"
)

// scoreTarget is where a batch-score job's mini-batches go: its own model
// server (URL http://ADDR/v2/models/NAME/infer, no token) or a
// deployment's scoring path on the router (with a score-scope token).
type scoreTarget struct {
	client *http.Client
	url    string
	// token, when set, is sent as "Authorization: Bearer TOKEN".
	token string
}

// errScoreFileTODO marks scoreFile as not written yet.
var errScoreFileTODO = errors.New("batch-score: scoring a file is not built yet")

// scoreFile scores one input file of a batch-score job: name is its path
// relative to the input folder (what the predictions' "file" says), in its
// format by extension (.csv with a header row; .jsonl or .ndjson), read
// from in as it goes (never all at once). It sends mini-batches of
// b.MiniBatchSize rows as V2 requests (one FP32 tensor b.InputName of
// shape [rows, columns]) to t, at most b.MaxConcurrency in flight, each
// mini-batch a span under ctx's, and writes one api.BatchScorePrediction
// line per row to out, in row order. A row the model refuses (a 4xx for
// its mini-batch, then for itself alone) or that is not numbers is a
// prediction with Error, counted in failed. err is the attempt's: the
// target unreachable or answering 5xx after retries, ctx done, the file
// unreadable.
func scoreFile(ctx context.Context, t scoreTarget, name string, in io.Reader, b *api.BatchScore, out io.Writer) (rows, failed int, err error) {
	return 0, 0, errScoreFileTODO
}
