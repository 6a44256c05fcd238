package testcluster

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
)

func newTestStandIn(t *testing.T) *WebhookStandIn {
	t.Helper()
	ca, err := newAuthority("test-ca")
	if err != nil {
		t.Fatal(err)
	}
	return newWebhookStandIn(ca, ServiceCIDR)
}

func post(t *testing.T, s *WebhookStandIn, body string) *httptest.ResponseRecorder {
	t.Helper()
	rec := httptest.NewRecorder()
	s.serve(rec, httptest.NewRequest(http.MethodPost, "/validate", strings.NewReader(body)))
	return rec
}

func TestStandInAdmits(t *testing.T) {
	s := newTestStandIn(t)
	rec := post(t, s, `{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u-1","operation":"UPDATE",
		"resource":{"group":"networking.internal.knative.dev","version":"v1alpha1","resource":"certificates"},"namespace":"knative-serving","name":"routing-serving-certs"}}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var got admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Kind != "AdmissionReview" || got.APIVersion != "admission.k8s.io/v1" || got.Response == nil ||
		got.Response.UID != "u-1" || !got.Response.Allowed || got.Response.Patch != nil {
		t.Errorf("unexpected response %+v", got)
	}
	r := s.Reviews()
	if len(r) != 1 || r[0].Operation != "UPDATE" || r[0].Resource != "certificates" || r[0].Name != "routing-serving-certs" {
		t.Errorf("recorded %+v", r)
	}
}

func TestStandInConverts(t *testing.T) {
	s := newTestStandIn(t)
	rec := post(t, s, `{"apiVersion":"apiextensions.k8s.io/v1","kind":"ConversionReview","request":{"uid":"c-1",
		"desiredAPIVersion":"sources.knative.dev/v1","objects":[{"apiVersion":"sources.knative.dev/v1beta2","kind":"PingSource","metadata":{"name":"p"},"spec":{"schedule":"* * * * *"}}]}}`)
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	var got apiextensionsv1.ConversionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Response == nil || got.Response.UID != "c-1" || got.Response.Result.Status != "Success" || len(got.Response.ConvertedObjects) != 1 {
		t.Fatalf("unexpected response %+v", got)
	}
	var obj map[string]any
	if err := json.Unmarshal(got.Response.ConvertedObjects[0].Raw, &obj); err != nil {
		t.Fatal(err)
	}
	if obj["apiVersion"] != "sources.knative.dev/v1" || obj["kind"] != "PingSource" || obj["spec"] == nil {
		t.Errorf("converted object %v", obj)
	}
}

func TestStandInRejectsGarbage(t *testing.T) {
	tests := []struct{ name, body string }{
		{"not json", "{"},
		{"unknown kind", `{"kind":"TokenReview"}`},
		{"admission without request", `{"kind":"AdmissionReview","apiVersion":"admission.k8s.io/v1"}`},
		{"conversion without request", `{"kind":"ConversionReview","apiVersion":"apiextensions.k8s.io/v1"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestStandIn(t)
			if rec := post(t, s, tt.body); rec.Code != http.StatusBadRequest {
				t.Errorf("status %d, want 400", rec.Code)
			}
			if n := len(s.Reviews()); n != 0 {
				t.Errorf("recorded %d reviews for a bad request", n)
			}
		})
	}
}

// The stand-in makes a certificate for whatever server name the apiserver
// asks for, signed by its CA.
func TestStandInCertificatePerServerName(t *testing.T) {
	s := newTestStandIn(t)
	for _, name := range []string{"webhook.knative-serving.svc", "istiod.istio-system.svc"} {
		c, err := s.certificate(&tls.ClientHelloInfo{ServerName: name})
		if err != nil {
			t.Fatal(err)
		}
		leaf, err := x509.ParseCertificate(c.Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(s.ca.certPEM)
		if _, err := leaf.Verify(x509.VerifyOptions{DNSName: name, Roots: pool}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		again, _ := s.certificate(&tls.ClientHelloInfo{ServerName: name})
		if again != c {
			t.Errorf("%s: certificate not cached", name)
		}
	}
}

func TestParseRoutes(t *testing.T) {
	tests := []struct {
		name, content string
		col           int
		header        bool
		want          string
	}{
		{"ipv4 header only", "Iface\tDestination\tGateway\n", 0, true, ""},
		{"ipv4 default route", "Iface\tDestination\tGateway\neth0\t00000000\t0100000A\n", 0, true, "eth0"},
		{"ipv6 loopback", "00000000000000000000000000000001 80 00000000000000000000000000000000 00 00000000000000000000000000000000 00000000 00000001 00000000 80200001       lo\n", 9, false, "lo"},
		{"ipv6 two devices", "fe80 40 0 0 0 0 0 0 0 lo\n2001 40 0 0 0 0 0 0 0 wlan0\n", 9, false, "lo,wlan0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := strings.Join(RouteInterfaces([]byte(tt.content), tt.col, tt.header), ","); got != tt.want {
				t.Errorf("got %q want %q", got, tt.want)
			}
		})
	}
}
