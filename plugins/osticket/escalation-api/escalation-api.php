<?php
/*
 * The plugin: registers the /api/escalation/... routes on osTicket's `api`
 * signal, for the active instance's configuration (the bot agent and the one API key
 * allowed to call them).
 */
require_once INCLUDE_DIR . 'class.plugin.php';
require_once __DIR__ . '/config.php';

class EscalationApiPlugin extends Plugin {
    var $config_class = 'EscalationApiConfig';

    // One bot agent per helpdesk: one instance.
    function isMultiInstance() {
        return false;
    }

    function bootstrap() {
        // The instance's configuration is side-loaded only while bootstrap()
        // runs: read it now, use it when the API dispatcher asks.
        $bot = trim((string) $this->getConfig()->get('bot_agent'));
        $key = trim((string) $this->getConfig()->get('api_key'));
        Signal::connect('api', function ($dispatcher) use ($bot, $key) {
            require_once __DIR__ . '/controller.php';
            EscalationApiController::$botAgent = $bot;
            EscalationApiController::$apiKey = $key;
            $dispatcher->append(url_get('^/escalation/ping$',
                array('EscalationApiController', 'ping')));
            $dispatcher->append(url_post(
                '^/escalation/tickets/(?P<id>\d+)/(?P<action>note|assign|fields|status|link)$',
                array('EscalationApiController', 'ticket')));
        });
    }
}
