package testcluster

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"sync"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Review is one admission or conversion call that the webhook stand-in
// answered.
type Review struct {
	// Type is "admission" or "conversion".
	Type string
	// ServerName is the TLS server name the apiserver asked for, e.g.
	// webhook.knative-serving.svc.
	ServerName string
	// Path is the HTTP path of the call.
	Path string
	// Operation, Group, Version, Resource, Namespace and Name describe an
	// admission request.
	Operation, Group, Version, Resource, Namespace, Name string
	// DesiredAPIVersion is the target of a conversion request.
	DesiredAPIVersion string
}

// WebhookStandIn answers the admission and conversion webhooks that the
// cluster's real manifests register, in place of webhook pods that kwok
// cannot run. It listens on 0.0.0.0:443 and makes the service CIDR local on
// lo, so the apiserver reaches it at any Service's ClusterIP. It admits
// everything without patches and converts by rewriting apiVersion: it proves
// the admission path works, not what the real webhooks would reject.
type WebhookStandIn struct {
	ca   *authority
	cidr string

	mu      sync.Mutex
	certs   map[string]*tls.Certificate
	reviews []Review
	srv     *http.Server
}

func newWebhookStandIn(ca *authority, cidr string) *WebhookStandIn {
	return &WebhookStandIn{ca: ca, cidr: cidr, certs: map[string]*tls.Certificate{}}
}

// Enabled reports whether the stand-in is answering.
func (s *WebhookStandIn) Enabled() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv != nil
}

// Enable starts answering webhook calls. It is a no-op when already enabled.
func (s *WebhookStandIn) Enable() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv != nil {
		return nil
	}
	if err := setLoopbackAddr(s.cidr, true); err != nil {
		return fmt.Errorf("make the service CIDR local for the webhook stand-in: %w", err)
	}
	ln, err := net.Listen("tcp", "0.0.0.0:443")
	if err != nil {
		return fmt.Errorf("webhook stand-in: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", s.serve)
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		TLSConfig:         &tls.Config{GetCertificate: s.certificate, MinVersion: tls.VersionTLS12},
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	s.srv = srv
	return nil
}

// Disable stops answering and removes the service CIDR from lo, so that a
// webhook call fails at once with "network is unreachable", as it would
// without the stand-in.
func (s *WebhookStandIn) Disable() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.srv == nil {
		return nil
	}
	err := s.srv.Close()
	s.srv = nil
	if e := setLoopbackAddr(s.cidr, false); e != nil {
		err = errors.Join(err, e)
	}
	return err
}

// Reviews returns the calls answered so far, oldest first.
func (s *WebhookStandIn) Reviews() []Review {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Review(nil), s.reviews...)
}

func (s *WebhookStandIn) certificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	name := hello.ServerName
	if name == "" {
		name = "webhook.invalid"
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.certs[name]; ok {
		return c, nil
	}
	kp, err := s.ca.issue(certSpec{CommonName: name, DNSNames: []string{name}, Server: true})
	if err != nil {
		return nil, err
	}
	c, err := tls.X509KeyPair(kp.CertPEM, kp.KeyPEM)
	if err != nil {
		return nil, err
	}
	s.certs[name] = &c
	return &c, nil
}

func (s *WebhookStandIn) record(r Review) {
	s.mu.Lock()
	s.reviews = append(s.reviews, r)
	s.mu.Unlock()
}

func (s *WebhookStandIn) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 32<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var probe struct{ Kind, APIVersion string }
	if err := json.Unmarshal(body, &probe); err != nil {
		http.Error(w, "not JSON: "+err.Error(), http.StatusBadRequest)
		return
	}
	serverName := ""
	if r.TLS != nil {
		serverName = r.TLS.ServerName
	}
	var resp any
	switch probe.Kind {
	case "AdmissionReview":
		resp, err = s.admit(body, serverName, r.URL.Path)
	case "ConversionReview":
		resp, err = s.convert(body, serverName, r.URL.Path)
	default:
		err = fmt.Errorf("unsupported review kind %q", probe.Kind)
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

func (s *WebhookStandIn) admit(body []byte, serverName, path string) (any, error) {
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil {
		return nil, err
	}
	if review.Request == nil {
		return nil, errors.New("AdmissionReview without request")
	}
	req := review.Request
	s.record(Review{
		Type: "admission", ServerName: serverName, Path: path,
		Operation: string(req.Operation), Group: req.Resource.Group, Version: req.Resource.Version,
		Resource: req.Resource.Resource, Namespace: req.Namespace, Name: req.Name,
	})
	return &admissionv1.AdmissionReview{
		TypeMeta: review.TypeMeta,
		Response: &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true},
	}, nil
}

func (s *WebhookStandIn) convert(body []byte, serverName, path string) (any, error) {
	var review apiextensionsv1.ConversionReview
	if err := json.Unmarshal(body, &review); err != nil {
		return nil, err
	}
	if review.Request == nil {
		return nil, errors.New("ConversionReview without request")
	}
	req := review.Request
	s.record(Review{Type: "conversion", ServerName: serverName, Path: path, DesiredAPIVersion: req.DesiredAPIVersion})
	converted := make([]runtime.RawExtension, 0, len(req.Objects))
	for _, o := range req.Objects {
		var obj map[string]any
		if err := json.Unmarshal(o.Raw, &obj); err != nil {
			return nil, fmt.Errorf("conversion object: %w", err)
		}
		obj["apiVersion"] = req.DesiredAPIVersion
		raw, err := json.Marshal(obj)
		if err != nil {
			return nil, err
		}
		converted = append(converted, runtime.RawExtension{Raw: raw})
	}
	return &apiextensionsv1.ConversionReview{
		TypeMeta: review.TypeMeta,
		Response: &apiextensionsv1.ConversionResponse{
			UID:              req.UID,
			ConvertedObjects: converted,
			Result:           metav1.Status{Status: metav1.StatusSuccess},
		},
	}, nil
}
