package client_test

import (
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

// Submit a training job, stream its log while it runs, and report how it ended.
func Example() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Hour)
	defer cancel()

	c := client.New("http://127.0.0.1:8080", os.Getenv("JOBGATE_TOKEN"))

	job, err := c.Submit(ctx, api.JobSpec{
		Name:           "train-mnist",
		Experiment:     "mnist",
		Image:          "localhost/jobgate-examples:latest",
		Command:        []string{"/toolbox", "train", "--epochs", "3"},
		Resources:      api.Resources{GPUs: 1},
		TimeoutSeconds: 3600,
	}, "train-mnist-2025-01-02") // retrying with the same key never submits twice
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
	fmt.Printf("job %s %s\n", job.ID, job.Status)
}

// Page through every failed job of an experiment.
func ExampleClient_List() {
	ctx := context.Background()
	c := client.New("http://127.0.0.1:8080", os.Getenv("JOBGATE_TOKEN"))

	opts := client.ListOptions{Status: api.StatusFailed, Experiment: "mnist", Limit: 100}
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
