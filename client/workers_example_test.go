package client_test

import (
	"cmp"
	"context"
	"fmt"
	"log"
	"os"

	"github.com/jobgate/jobgate/client"
)

// Why did a job take three attempts, and which workers are there now?
func ExampleClient_Attempts() {
	ctx := context.Background()
	c := client.New(cmp.Or(os.Getenv("JOBGATE_URL"), "http://127.0.0.1:8080"), os.Getenv("JOBGATE_TOKEN"))

	attempts, err := c.Attempts(ctx, "01jq7m1c9ws3v5b7h0a6k2e4xt")
	if err != nil {
		log.Fatal(err)
	}
	for _, a := range attempts {
		fmt.Printf("attempt %d on %s: %s (%s)\n", a.Attempt, a.Worker, a.Status, a.Reason)
	}
	workers, err := c.Workers(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, w := range workers {
		fmt.Printf("%s: %s, %d slots, %d GPUs\n", w.ID, w.State, w.Slots, len(w.GPUs))
	}
}
