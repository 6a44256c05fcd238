// Package version reports what this tmbox binary is: its own version, the Go
// toolchain that built it and the Istio release compiled into it.
package version

import (
	"runtime"
	"runtime/debug"

	istioversion "istio.io/istio/operator/version"
)

// These are set at link time by the Makefile
// (-ldflags "-X github.com/tmbox/tmbox/internal/version.version=…").
// They are the only package variables in tmbox, and nothing writes them at
// run time.
var (
	version = "dev"
	commit  = ""
)

// istioModule is the module whose embedded charts and operator tmbox links.
const istioModule = "istio.io/istio"

// Info describes a tmbox binary.
type Info struct {
	// Version is tmbox's release version, or "dev" for an untagged build.
	Version string `json:"version"`
	// Commit is the git commit the binary was built from, when known.
	Commit string `json:"commit,omitempty"`
	// GoVersion is the Go toolchain that built the binary.
	GoVersion string `json:"goVersion"`
	// Platform is GOOS/GOARCH.
	Platform string `json:"platform"`
	// Istio is the Istio release whose charts and operator are compiled in.
	Istio string `json:"istio"`
	// IstioModule is the istio.io/istio module version that provides them.
	IstioModule string `json:"istioModule,omitempty"`
}

// Get returns the Info of the running binary.
func Get() Info {
	info := Info{
		Version:   version,
		Commit:    commit,
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
		Istio:     istioversion.OperatorCodeBaseVersion,
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, dep := range bi.Deps {
			if dep.Path == istioModule {
				info.IstioModule = dep.Version
				if dep.Replace != nil {
					info.IstioModule = dep.Replace.Version
				}
			}
		}
	}
	return info
}
