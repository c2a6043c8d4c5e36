/* Connectors and listeners of any kind: the public functions dispatch
 * through the ops table each one embeds first (coil/plugin.h). */
#include <stddef.h>

#include <coil/plugin.h>

int coil_connector_connect(coil_connector *c)
{
    return c->ops->connect(c);
}

void coil_connector_stop_connecting(coil_connector *c)
{
    c->ops->stop_connecting(c);
}

coil_transport *coil_connector_transport(const coil_connector *c)
{
    return c->ops->transport(c);
}

void coil_connector_free(coil_connector *c)
{
    if (c)
        c->ops->free(c);
}

const char *coil_connector_kind(const coil_connector *c)
{
    return c->ops->kind;
}

int coil_connector_set_layer(coil_connector *c, coil_layer *layer)
{
    if (!layer)
        return COIL_EINVAL;
    if (!c || !c->ops->set_layer) {
        layer->ops->free(layer);
        return c ? COIL_ENOTSUP : COIL_EINVAL;
    }
    return c->ops->set_layer(c, layer);
}

int coil_listener_get_host(const coil_listener *l, coil_address *out)
{
    return l->ops->get_host(l, out);
}

void coil_listener_close(coil_listener *l)
{
    if (l)
        l->ops->close(l);
}

const char *coil_listener_kind(const coil_listener *l)
{
    return l->ops->kind;
}

int coil_listener_set_layer(coil_listener *l, coil_layer *layer)
{
    if (!layer)
        return COIL_EINVAL;
    if (!l || !l->ops->set_layer) {
        layer->ops->free(layer);
        return l ? COIL_ENOTSUP : COIL_EINVAL;
    }
    return l->ops->set_layer(l, layer);
}
