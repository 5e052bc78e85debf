package config

import (
	"errors"
	"fmt"
	"net"
)

// S3Config is the object store the file GC removes objects from (MinIO, versitygw or AWS).
type S3Config struct {
	// Endpoint is host:port, without a scheme. Empty: no S3, and the
	// file GC is unavailable.
	Endpoint string `yaml:"endpoint"`
	// AccessKey and SecretKey sign requests.
	AccessKey string `yaml:"access_key"`
	SecretKey string `yaml:"secret_key"`
	// UseSSL talks HTTPS.
	UseSSL bool `yaml:"use_ssl"`
	// Region; default us-east-1.
	Region string `yaml:"region"`
	// PathStyle addresses buckets as /bucket/key rather than bucket.host (MinIO, versitygw).
	PathStyle *bool `yaml:"path_style"`
}

// WithDefaults fills unset fields.
func (c S3Config) WithDefaults() S3Config {
	if c.Region == "" {
		c.Region = "us-east-1"
	}
	if c.PathStyle == nil {
		on := true
		c.PathStyle = &on
	}
	return c
}

// Validate names the first bad key, relative to the s3 section.
func (c S3Config) Validate() error {
	if c.Endpoint == "" {
		return nil
	}
	if _, _, err := net.SplitHostPort(c.Endpoint); err != nil {
		return fmt.Errorf("endpoint: %q is not host:port: %w", c.Endpoint, err)
	}
	if c.AccessKey == "" || c.SecretKey == "" {
		return errors.New("access_key: access_key and secret_key are required with an endpoint")
	}
	return nil
}
