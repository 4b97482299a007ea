// The built-in HTTP/1.1 transport (Boost.Beast, blocking, with deadlines). Beast stays in
// this one translation unit.
#include "otsync/client.hpp"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace otsync::client {

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;

class HttpTransport final : public Transport {
public:
    HttpTransport(const std::string& url, int timeout_ms) : m_timeout(timeout_ms) {
        // http://HOST[:PORT][/prefix]; TLS is terminated in front of the server.
        const std::string scheme = "http://";
        if (url.rfind(scheme, 0) != 0) {
            throw ClientError(OTSYNC_ERR_INVALID_ARGUMENT,
                              "the server address must start with http://");
        }
        std::string rest = url.substr(scheme.size());
        const auto slash = rest.find('/');
        if (slash != std::string::npos) {
            m_prefix = rest.substr(slash);
            while (!m_prefix.empty() && m_prefix.back() == '/') {
                m_prefix.pop_back();
            }
            rest = rest.substr(0, slash);
        }
        const auto colon = rest.rfind(':');
        m_host = colon == std::string::npos ? rest : rest.substr(0, colon);
        m_port = colon == std::string::npos ? "80" : rest.substr(colon + 1);
        if (m_host.empty() || m_port.empty()) {
            throw ClientError(OTSYNC_ERR_INVALID_ARGUMENT, "the server address has no host");
        }
    }

    HttpReply post(const std::string& path, const std::map<std::string, std::string>& headers,
                   const std::string& body) override {
        try {
            boost::asio::io_context ioc;
            tcp::resolver resolver(ioc);
            beast::tcp_stream stream(ioc);
            stream.expires_after(std::chrono::milliseconds(m_timeout));
            stream.connect(resolver.resolve(m_host, m_port));
            http::request<http::string_body> req{http::verb::post, m_prefix + path, 11};
            req.set(http::field::host, m_host);
            req.set(http::field::user_agent, "otsync-client-core/1");
            for (const auto& [k, v] : headers) {
                req.set(k, v);
            }
            req.body() = body;
            req.prepare_payload();
            http::write(stream, req);
            beast::flat_buffer buffer;
            http::response_parser<http::string_body> parser;
            parser.body_limit(64u << 20); // a response page is bounded by the server's page size
            http::read(stream, buffer, parser);
            beast::error_code ec;
            stream.socket().shutdown(tcp::socket::shutdown_both, ec);
            return {parser.get().result_int(), parser.get().body()};
        } catch (const std::exception&) {
            return {}; // no answer: the caller keeps its outbox and retries
        }
    }

private:
    std::string m_host, m_port, m_prefix;
    int m_timeout;
};

} // namespace

std::unique_ptr<Transport> make_http_transport(const std::string& base_url,
                                               const HttpOptions& options) {
    return std::make_unique<HttpTransport>(base_url, options.request_timeout_ms);
}

} // namespace otsync::client
