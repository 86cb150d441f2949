// The one translation unit that compiles Boost.Beast's implementation
// (BOOST_BEAST_SEPARATE_COMPILATION is defined for the whole project).
#include <boost/beast/src.hpp>
