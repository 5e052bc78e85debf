package app

import (
	"fmt"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/chatplat/job-service/config"
)

// NewS3Client returns a minio-go client for cfg, or nil when no endpoint is configured. It
// does not connect: the first request does.
func NewS3Client(cfg config.S3Config) (*minio.Client, error) {
	if cfg.Endpoint == "" {
		return nil, nil
	}
	lookup := minio.BucketLookupDNS
	if cfg.PathStyle == nil || *cfg.PathStyle {
		lookup = minio.BucketLookupPath
	}
	c, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:       cfg.UseSSL,
		Region:       cfg.Region,
		BucketLookup: lookup,
	})
	if err != nil {
		return nil, fmt.Errorf("s3 client for %s: %w", cfg.Endpoint, err)
	}
	return c, nil
}
