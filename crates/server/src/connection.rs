//! One accepted connection, served as HTTP/2 when the client offered it in TLS (kubectl and
//! browsers do: a browser's streams then share one connection instead of six per server),
//! as HTTP/1.1 otherwise.
//!
//! Memory stays bounded by one cap on what is open at once: a HTTP/1.1 connection holds one
//! place, a HTTP/2 connection one and each of its requests another while it is answered
//! (a watch until it ends); past the cap a new connection is closed and a new HTTP/2
//! request is answered 429, as the API server answers past its max-in-flight.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderValue, Request};
use axum::response::{IntoResponse, Response};
use axum::Router;
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::graceful::Watcher;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::server::TlsStream;
use tower_service::Service;

use crate::errors::ApiError;

/// A request's headers must arrive within this time of the connection becoming ready for
/// them (slowloris); a kept-alive HTTP/1.1 connection idle this long is closed.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Streams at once on one HTTP/2 connection (the API server's default).
const MAX_STREAMS: u32 = 250;

/// What one stream may have buffered for sending: a watch's chunks wait in its own queue.
const STREAM_SEND_BUFFER: usize = 64 * 1024;

/// A HTTP/2 connection that answers no ping within this time is closed.
const PING_INTERVAL: Duration = Duration::from_secs(30);
const PING_TIMEOUT: Duration = Duration::from_secs(20);

pub async fn serve(
    stream: TlsStream<TcpStream>,
    app: Router,
    places: Arc<Semaphore>,
    watcher: Watcher,
) {
    let http2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    let io = TokioIo::new(stream);
    if http2 {
        let service = hyper::service::service_fn(move |request: Request<Incoming>| {
            let mut app = app.clone();
            let place = places.clone().try_acquire_owned();
            async move {
                let Ok(place) = place else {
                    let mut refused = ApiError::too_many_requests().into_response();
                    refused
                        .headers_mut()
                        .insert("retry-after", HeaderValue::from_static("1"));
                    return Ok(refused);
                };
                let response: Response = app.call(request).await?;
                Ok::<_, std::convert::Infallible>(response.map(|body| {
                    Body::new(Holding {
                        body,
                        _place: place,
                    })
                }))
            }
        });
        let connection = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .max_concurrent_streams(MAX_STREAMS)
            .max_send_buf_size(STREAM_SEND_BUFFER)
            .keep_alive_interval(PING_INTERVAL)
            .keep_alive_timeout(PING_TIMEOUT)
            .serve_connection(io, service);
        let _ = watcher.watch(connection).await;
    } else {
        // The header timeout also closes a kept-alive connection left idle.
        let service = hyper_util::service::TowerToHyperService::new(app);
        let connection = hyper::server::conn::http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .serve_connection(io, service);
        let _ = watcher.watch(connection).await;
    }
}

/// A response body that holds its request's place under the cap until it is dropped.
struct Holding {
    body: Body,
    _place: OwnedSemaphorePermit,
}

impl HttpBody for Holding {
    type Data = <Body as HttpBody>::Data;
    type Error = <Body as HttpBody>::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
