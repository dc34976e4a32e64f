package feed

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// HTTPClient returns the client an HTTP sink uses: TLS from tc, no
// overall timeout (each delivery's context bounds it), keep-alive.
func HTTPClient(tc *TLSConfig) (*http.Client, error) {
	tlsc, err := tc.Build()
	if err != nil {
		return nil, err
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tlsc,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   5 * time.Second,
		ExpectContinueTimeout: time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &http.Client{Transport: tr}, nil
}

// maxResponse bounds how much of a receiver's response is read.
const maxResponse = 16 << 20

// ReadResponse reads (a bounded amount of) a response body and closes it.
func ReadResponse(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return b, fmt.Errorf("read response: %w", err)
	}
	return b, nil
}

// Retryable reports whether an HTTP status says "try again later" rather
// than "this request is wrong": 408, 429 and every 5xx.
func Retryable(status int) bool {
	return status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500
}

// Snippet shortens a response body for an error message.
func Snippet(b []byte) string {
	const n = 256
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}
