//! Streams the scan result into S3 while it is built, so the scanner never holds the whole JSON:
//! bytes collect in one part buffer; each full part is sent with UploadPart (a multipart upload
//! made on the first full part); the end sends the last part and CompleteMultipartUpload. A
//! result smaller than one part is one PutObject, as before. Any failure after the upload was made
//! aborts it (AbortMultipartUpload), so no parts are left to be billed. Every call carries the
//! expected bucket owner.

use anyhow::Context;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};

/// Part size: above S3's 5 MiB minimum for every part but the last, small enough to keep two in
/// memory at once (the one filling and the one sending). 10,000 parts (S3's limit) hold 80 GiB.
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// S3's minimum size of every part but the last.
pub const MIN_PART_SIZE: usize = 5 * 1024 * 1024;

/// One object being written.
#[derive(Debug)]
pub struct Upload {
    s3: aws_sdk_s3::Client,
    bucket: String,
    owner: Option<String>,
    key: String,
    part_size: usize,
    buffer: Vec<u8>,
    upload_id: Option<String>,
    parts: Vec<CompletedPart>,
    /// Bytes written so far.
    written: u64,
}

impl Upload {
    /// An object `key` in `bucket`, which `owner` (when given) must own.
    pub fn new(
        s3: aws_sdk_s3::Client,
        bucket: &str,
        owner: Option<&str>,
        key: &str,
        part_size: usize,
    ) -> Upload {
        let part_size = part_size.max(MIN_PART_SIZE);
        Upload {
            s3,
            bucket: bucket.to_string(),
            owner: owner.map(str::to_string),
            key: key.to_string(),
            part_size,
            buffer: Vec::new(),
            upload_id: None,
            parts: Vec::new(),
            written: 0,
        }
    }

    /// Bytes written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Parts sent so far.
    pub fn parts_sent(&self) -> usize {
        self.parts.len()
    }

    /// Appends bytes, sending each part as it fills. On error the upload is aborted.
    ///
    /// The buffer is allocated at the part's size and filled to exactly that, then handed to
    /// UploadPart whole: one part's memory, never a doubled or split copy.
    pub async fn write(&mut self, mut bytes: &[u8]) -> anyhow::Result<()> {
        self.written += bytes.len() as u64;
        while !bytes.is_empty() {
            if self.buffer.capacity() == 0 {
                self.buffer = Vec::with_capacity(self.part_size);
            }
            let take = bytes.len().min(self.part_size - self.buffer.len());
            self.buffer.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.buffer.len() == self.part_size {
                let part = std::mem::take(&mut self.buffer);
                if let Err(e) = self.send_part(part).await {
                    self.abort().await;
                    return Err(e);
                }
            }
        }
        Ok(())
    }

    async fn send_part(&mut self, part: Vec<u8>) -> anyhow::Result<()> {
        let (bucket, key) = (&self.bucket, &self.key);
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let out = self
                    .s3
                    .create_multipart_upload()
                    .bucket(bucket)
                    .key(key)
                    .set_expected_bucket_owner(self.owner.clone())
                    .content_type("application/json")
                    // Declared here, so each part's checksum is checked and the completion
                    // names them.
                    .checksum_algorithm(ChecksumAlgorithm::Crc32)
                    .send()
                    .await
                    .with_context(|| format!("CreateMultipartUpload s3://{bucket}/{key}"))?;
                let id = out
                    .upload_id
                    .with_context(|| format!("CreateMultipartUpload s3://{bucket}/{key}: no id"))?;
                self.upload_id = Some(id.clone());
                id
            }
        };
        let number = self.parts.len() as i32 + 1;
        let out = self
            .s3
            .upload_part()
            .bucket(bucket)
            .key(key)
            .set_expected_bucket_owner(self.owner.clone())
            .upload_id(&upload_id)
            .part_number(number)
            .checksum_algorithm(ChecksumAlgorithm::Crc32)
            .body(ByteStream::from(part))
            .send()
            .await
            .with_context(|| format!("UploadPart {number} of s3://{bucket}/{key}"))?;
        self.parts.push(
            CompletedPart::builder()
                .part_number(number)
                .set_e_tag(out.e_tag)
                .set_checksum_crc32(out.checksum_crc32)
                .build(),
        );
        Ok(())
    }

    /// Stores what was written: PutObject when it fits one part, else the last part and
    /// CompleteMultipartUpload. On error the upload is aborted and nothing is stored.
    pub async fn finish(mut self) -> anyhow::Result<()> {
        let (bucket, key) = (self.bucket.clone(), self.key.clone());
        if self.upload_id.is_none() {
            let body = std::mem::take(&mut self.buffer);
            self.s3
                .put_object()
                .bucket(&bucket)
                .set_expected_bucket_owner(self.owner.clone())
                .key(&key)
                .content_type("application/json")
                .body(body.into())
                .send()
                .await
                .with_context(|| format!("PutObject s3://{bucket}/{key}"))?;
            return Ok(());
        }
        let done = async {
            if !self.buffer.is_empty() {
                let last = std::mem::take(&mut self.buffer);
                self.send_part(last).await?;
            }
            self.s3
                .complete_multipart_upload()
                .bucket(&bucket)
                .key(&key)
                .set_expected_bucket_owner(self.owner.clone())
                .upload_id(self.upload_id.clone().unwrap_or_default())
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(self.parts.clone()))
                        .build(),
                )
                .send()
                .await
                .with_context(|| format!("CompleteMultipartUpload s3://{bucket}/{key}"))?;
            anyhow::Ok(())
        }
        .await;
        if done.is_err() {
            self.abort().await;
        }
        done
    }

    /// Abandons the object: aborts the multipart upload if one was made (best effort: a failure
    /// is logged, and the bucket's lifecycle rule for incomplete uploads is the backstop).
    pub async fn abort(&mut self) {
        let Some(id) = self.upload_id.take() else {
            return;
        };
        let aborted = self
            .s3
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .set_expected_bucket_owner(self.owner.clone())
            .upload_id(&id)
            .send()
            .await;
        match aborted {
            Ok(_) => {
                tracing::warn!(bucket = %self.bucket, key = %self.key, "multipart upload aborted")
            }
            Err(e) => tracing::error!(
                bucket = %self.bucket,
                key = %self.key,
                error = %aws_smithy_types::error::display::DisplayErrorContext(&e),
                "AbortMultipartUpload failed: the parts stay until the bucket's lifecycle removes them"
            ),
        }
        self.parts.clear();
        self.buffer = Vec::new();
    }
}
