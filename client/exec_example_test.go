package client_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log"
	"os"

	"github.com/jobgate/jobgate/client"
)

// Look into a running job: list what it has written to its outputs folder
// so far, with the command's output on this program's own stdout and stderr.
// The job ID is one that `jobgate submit` printed.
func ExampleClient_Exec() {
	c := client.New(cmp.Or(os.Getenv("JOBGATE_URL"), "http://127.0.0.1:8080"), os.Getenv("JOBGATE_TOKEN"))
	code, err := c.Exec(context.Background(), "01jd2x4g9k5v0a8m3r7c6b1n2p", []string{"/bin/toolbox", "ls", "/outputs"}, os.Stdout, os.Stderr)
	var apiErr *client.Error
	switch {
	case errors.As(err, &apiErr) && apiErr.Code == "job_not_running":
		log.Fatal("the job is not running (any more)")
	case err != nil:
		log.Fatal(err)
	}
	fmt.Println("exit code", code)
}
