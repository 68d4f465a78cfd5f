package client_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"time"

	"github.com/jobgate/jobgate/api"
	"github.com/jobgate/jobgate/client"
)

// Submit a job, stream its log while it runs, and report how it ended.
//
// It runs as it stands against `make dev` (the gateway on 127.0.0.1:8080 and
// the example image): set JOBGATE_TOKEN to the token in .jobgate/token, and
// JOBGATE_URL to reach another gateway.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()

	c := client.New(cmp.Or(os.Getenv("JOBGATE_URL"), "http://127.0.0.1:8080"), os.Getenv("JOBGATE_TOKEN"))

	job, err := c.Submit(ctx, api.JobSpec{
		Name:           "hello",
		Experiment:     "examples",
		Image:          "localhost/jobgate-examples:latest",
		Command:        []string{"/bin/toolbox", "lines", "3"},
		TimeoutSeconds: 60,
	}, "") // an idempotency key here makes a retried submit safe: the same key never submits twice
	if err != nil {
		var apiErr *client.Error
		if errors.As(err, &apiErr) && apiErr.Code == "invalid_spec" {
			log.Fatalf("fix the spec: %s", apiErr.Message)
		}
		log.Fatal(err)
	}

	logs, err := c.Logs(ctx, job.ID, true) // ends when the job does
	if err != nil {
		log.Fatal(err)
	}
	_, err = io.Copy(os.Stdout, logs)
	logs.Close()
	if err != nil {
		log.Fatal(err)
	}

	job, err = c.Wait(ctx, job.ID)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("job", job.Status)
	// Output:
	// line 000001
	// line 000002
	// line 000003
	// job succeeded
}

// Page through every failed job of an experiment.
func ExampleClient_List() {
	ctx := context.Background()
	c := client.New(cmp.Or(os.Getenv("JOBGATE_URL"), "http://127.0.0.1:8080"), os.Getenv("JOBGATE_TOKEN"))

	opts := client.ListOptions{Status: api.StatusFailed, Experiment: "examples", Limit: 100}
	for {
		page, err := c.List(ctx, opts)
		if err != nil {
			log.Fatal(err)
		}
		for _, j := range page.Jobs {
			fmt.Println(j.ID, j.Reason)
		}
		if page.NextCursor == "" {
			break
		}
		opts.Cursor = page.NextCursor
	}
}
