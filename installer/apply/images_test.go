package apply

import "testing"

func TestRewriteImages(t *testing.T) {
	mapping := map[string]string{
		"docker.io/istio/pilot:1.28.6":  "reg.local/m/istio/pilot:1.28.6@sha256:aa",
		"gcr.io/k/queue@sha256:11":      "reg.local/m/k/queue@sha256:11",
		"gcr.io/triggermesh/x:v1.27.0":  "reg.local/m/triggermesh/x:v1.27.0@sha256:bb",
		"gcr.io/triggermesh/xy:v1.27.0": "reg.local/m/triggermesh/xy:v1.27.0@sha256:cc",
	}
	tests := []struct{ name, in, want string }{
		{"container", "image: docker.io/istio/pilot:1.28.6\n", "image: reg.local/m/istio/pilot:1.28.6@sha256:aa\n"},
		{"quoted env value", `value: "gcr.io/k/queue@sha256:11"`, `value: "reg.local/m/k/queue@sha256:11"`},
		{"configmap value", "queue-sidecar-image: gcr.io/k/queue@sha256:11", "queue-sidecar-image: reg.local/m/k/queue@sha256:11"},
		{"not inside a longer tag", "image: docker.io/istio/pilot:1.28.6-distroless", "image: docker.io/istio/pilot:1.28.6-distroless"},
		{"not inside a longer path", "image: mirror/docker.io/istio/pilot:1.28.6", "image: mirror/docker.io/istio/pilot:1.28.6"},
		{"prefix names", "a: gcr.io/triggermesh/x:v1.27.0 b: gcr.io/triggermesh/xy:v1.27.0", "a: reg.local/m/triggermesh/x:v1.27.0@sha256:bb b: reg.local/m/triggermesh/xy:v1.27.0@sha256:cc"},
		{"several", "[docker.io/istio/pilot:1.28.6,docker.io/istio/pilot:1.28.6]", "[reg.local/m/istio/pilot:1.28.6@sha256:aa,reg.local/m/istio/pilot:1.28.6@sha256:aa]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(RewriteImages([]byte(tt.in), mapping)); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}
