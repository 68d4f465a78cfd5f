package api_test

import (
	"fmt"

	"github.com/jobgate/jobgate/api"
)

func ExampleDecodeJobSpec() {
	spec, err := api.DecodeJobSpec([]byte(`
image: localhost/jobgate-examples:latest
command: [/bin/toolbox, echo, hi]
env:
  VERBOSE: N   # YAML 1.2: the string "N", not false
`))
	fmt.Println(spec.Command, spec.Env["VERBOSE"], err)

	_, err = api.DecodeJobSpec([]byte("command: [a]\nenv:\n  EPOCHS: 10\n"))
	fmt.Println(err)
	// Output:
	// [/bin/toolbox echo hi] N <nil>
	// field env.EPOCHS: got number, want a string (quote it: "10")
}
