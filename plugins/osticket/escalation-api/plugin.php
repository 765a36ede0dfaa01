<?php
/*
 * The escalation-api plugin for osTicket 1.18 (helpdesk-escalations).
 *
 * Install: copy this folder to include/plugins/escalation-api of the osTicket
 * installation, then Admin Panel -> Manage -> Plugins -> Add New Plugin ->
 * Install, enable it, and add an instance naming the bot agent and the
 * worker's API key (the only key the plugin accepts). See
 * docs/osticket.md of helpdesk-escalations.
 */
return array(
    'id' => 'helpdesk-escalations:escalation-api',
    'version' => '1.0.0',
    'ost_version' => '1.17',
    'name' => 'Escalation API',
    'author' => 'helpdesk-escalations',
    'description' => 'Internal notes, assignment, form fields, status and links for the '
        . 'escalation worker, behind its own API key, done as a configured bot agent.',
    'url' => 'https://example.invalid/helpdesk-escalations',
    'plugin' => 'escalation-api.php:EscalationApiPlugin',
);
