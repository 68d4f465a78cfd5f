package tmpl_test

import (
	"fmt"

	"github.com/jobgate/jobgate/internal/tmpl"
)

func Example() {
	body := []byte(`{"after":"0d1a26e67d8f","repository":{"id":2432232314,"full_name":"acme/train-resnet"}}`)
	payload, err := tmpl.DecodePayload(body)
	if err != nil {
		panic(err)
	}
	data := map[string]any{"payload": payload}

	// Each result is one argv element, never shell text.
	args, err := tmpl.RenderArgs([]string{"train", "--repo", "{{ .payload.repository.full_name }}"}, data)
	fmt.Printf("%q %v\n", args, err)

	env, err := tmpl.RenderMap(map[string]string{
		"GIT_SHA": "{{ .payload.after }}",
		"REPO_ID": "{{ .payload.repository.id }}",
	}, data)
	fmt.Println(env["GIT_SHA"], env["REPO_ID"], err)

	// A delivery without the fields the trigger needs is rejected.
	_, err = tmpl.Render("{{ .payload.pull_request.number }}", data)
	fmt.Println(err)
	// Output:
	// ["train" "--repo" "acme/train-resnet"] <nil>
	// 0d1a26e67d8f 2432232314 <nil>
	// render template: cannot read .payload.pull_request.number: "pull_request" is missing from .payload
}
