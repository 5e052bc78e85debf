module github.com/chatplat/job-service

go 1.26.8
