// The one translation unit that compiles Boost.Asio's SSL implementation
// (BOOST_ASIO_SEPARATE_COMPILATION is defined for the whole project; src/net/asio_impl.cpp
// compiles the rest of Asio). Used by the Kubernetes API client (k8s_lease.cpp).
#include <boost/asio/ssl/impl/src.hpp>
