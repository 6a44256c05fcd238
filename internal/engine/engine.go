// Package engine decides which container engine kind would use on this
// host, by kind's own rules, so that preflight's checks, the kind provider
// and the loading of a bundle's node image all agree.
package engine

import (
	"errors"
	"fmt"
)

// Binary is a container engine's command line.
type Binary struct {
	// Name is the command: docker, podman, nerdctl, finch or nerdctl.lima.
	Name string
	// Family is docker, podman or nerdctl (finch and nerdctl.lima are
	// nerdctl).
	Family string
	// Path is where it was found on PATH.
	Path string
}

// Detect finds the engine kind would use: KIND_EXPERIMENTAL_PROVIDER when
// it names a known provider (as kind's CLI does), otherwise the first of
// docker, nerdctl, podman on PATH (kind's own detection order). note
// explains an ignored KIND_EXPERIMENTAL_PROVIDER value.
func Detect(getenv func(string) string, lookPath func(string) (string, error)) (b Binary, note string, err error) {
	p := getenv("KIND_EXPERIMENTAL_PROVIDER")
	family := ""
	switch p {
	case "":
	case "docker", "podman":
		family = p
	case "nerdctl", "finch", "nerdctl.lima":
		family = "nerdctl"
	default:
		note = fmt.Sprintf(" (KIND_EXPERIMENTAL_PROVIDER=%q ignored, as kind does)", p)
	}
	if family != "" {
		path, lerr := lookPath(p)
		if lerr != nil {
			return Binary{}, note, fmt.Errorf("KIND_EXPERIMENTAL_PROVIDER=%s but %s is not on PATH: %w", p, p, lerr)
		}
		return Binary{Name: p, Family: family, Path: path}, note, nil
	}
	for _, name := range []string{"docker", "nerdctl", "podman"} {
		if path, lerr := lookPath(name); lerr == nil {
			return Binary{Name: name, Family: name, Path: path}, note, nil
		}
	}
	return Binary{}, note, errors.New("none of docker, nerdctl, podman is on PATH")
}
