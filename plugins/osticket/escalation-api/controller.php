<?php
/*
 * The /api/escalation/... endpoints. Every answer is JSON: {"ok": true, ...}
 * or {"ok": false, "code": "<code>", "error": "<text>"} with an HTTP
 * status that says what kind of failure it is (400 bad request, 401 key,
 * 403 the bot agent may not, 404 no such ticket, 409 a request id reused
 * for another write, 422 osTicket refused it or the ticket's state does not
 * allow it). A plugin instance set up wrong (no bot agent, an inactive one,
 * no worker API key) answers 401 with code "not_configured" or "bot_agent":
 * nothing can work until an admin fixes it, so the worker stops at once.
 *
 * Authentication is core osTicket's X-API-Key header of an active key bound
 * to the client's exact IP address, and that key must be the one the plugin
 * instance names (its "Worker API key" setting): another integration's key
 * (web forms, cron) gets no write power here. Every change is made by osTicket's
 * own methods as the configured bot agent, so permissions, the thread's
 * event log and the caches stay osTicket's. No endpoint sends mail: notes
 * and assignments are posted with alerts off.
 *
 * A note needs a "request_id": a request with an id already answered is
 * answered again from the ledger (ost_config, namespace
 * escalation-api.requests) without writing, and a note whose body already
 * holds the request id on that ticket is taken as written (the worker puts
 * it in the note's footer), so a note is written once however often it is
 * sent. The other endpoints set a state ("assign to X", "status Y"), which
 * is a no-op when the ticket already has it.
 */
require_once INCLUDE_DIR . 'class.api.php';

define('ESCALATION_API_VERSION', '1.0.0');

class EscalationApiController extends ApiController {
    static $botAgent = '';
    static $apiKey = '';
    const LEDGER = 'escalation-api.requests';
    const LEDGER_DAYS = 30;

    // ---------------------------------------------------------------- plumbing
    private function reply($code, array $body) {
        // not Http::response(): it knows a few codes only and answers 500 for 409 or 503
        $json = json_encode($body, JSON_UNESCAPED_SLASHES);
        http_response_code($code);
        header('Content-Type: application/json; charset=UTF-8');
        header('Content-Length: ' . strlen($json));
        print $json;
        exit;
    }

    private function fail($code, $error, $message) {
        $this->reply($code, array('ok' => false, 'code' => $error, 'error' => $message));
    }

    private function authorize() {
        $key = $this->getKey();
        if (!$key || !$key->isActive() || $key->getIPAddr() != $this->getRemoteAddr())
            $this->fail(401, 'api_key', 'Valid API key required (active, bound to this client IP)');
        if (self::$apiKey === '')
            $this->fail(401, 'not_configured', 'escalation-api: the plugin instance names no '
                . 'Worker API key (Admin Panel -> Manage -> Plugins -> Escalation API -> Instances)');
        if (!hash_equals(self::$apiKey, (string) $key->getKey()))
            $this->fail(401, 'api_key', 'escalation-api: this API key is not the Worker API key '
                . 'of the plugin instance');
        return $key;
    }

    private function bot() {
        global $thisstaff;
        $name = self::$botAgent;
        if (!$name)
            $this->fail(401, 'not_configured', 'escalation-api: no bot agent configured');
        $staff = Staff::lookup(array('username' => $name));
        if (!$staff || !$staff->isActive())
            $this->fail(401, 'bot_agent', sprintf('escalation-api: bot agent "%s" is not an active agent', $name));
        $thisstaff = $staff;
        return $staff;
    }

    private function body() {
        $raw = file_get_contents('php://input');
        $data = json_decode($raw === '' ? '{}' : $raw, true);
        if (!is_array($data))
            $this->fail(400, 'bad_json', 'The request body must be a JSON object');
        return $data;
    }

    // ---------------------------------------------------------------- the ledger
    private function ledgerKey($requestId) {
        return sha1($requestId);
    }

    private function recorded($requestId) {
        $item = ConfigItem::objects()->filter(array(
            'namespace' => self::LEDGER, 'key' => $this->ledgerKey($requestId)))->first();
        return $item ? json_decode($item->value, true) : null;
    }

    private function record($requestId, $ticketId, $action, $code, array $body) {
        try {
            $item = new ConfigItem(array(
                'namespace' => self::LEDGER,
                'key' => $this->ledgerKey($requestId),
                'value' => json_encode(array(
                    'ticket_id' => (int) $ticketId, 'action' => $action,
                    'code' => $code, 'body' => $body)),
            ));
            $item->save();
            // entries older than the worker could retry are of no more use
            ConfigItem::objects()->filter(array(
                'namespace' => self::LEDGER,
                'updated__lt' => date('Y-m-d H:i:s', Misc::dbtime() - self::LEDGER_DAYS * 86400),
            ))->delete();
        } catch (Exception $e) {
            // the write is done; a lost ledger row only costs the replay check below
        }
    }

    // ---------------------------------------------------------------- endpoints
    function ping() {
        $key = $this->authorize();
        $bot = $this->bot();
        // what the worker's checks compare: the key creates the escalation tickets, the bot
        // agent writes in the escalation topic's department
        $perms = array('assign' => Ticket::PERM_ASSIGN, 'edit' => Ticket::PERM_EDIT,
            'close' => Ticket::PERM_CLOSE, 'link' => Ticket::PERM_LINK);
        $departments = array();
        // the departments whose tickets the bot agent reaches (Staff::canAccessDept)
        foreach ($bot->isAccessLimited() ? array() : $bot->getDepts() as $deptId) {
            $role = $bot->getRole($deptId);
            $granted = array();
            foreach ($perms as $name => $perm)
                if ($role && $role->hasPerm($perm))
                    $granted[] = $name;
            $departments[(string) $deptId] = $granted;
        }
        $this->reply(200, array(
            'ok' => true,
            'plugin' => 'escalation-api',
            'version' => ESCALATION_API_VERSION,
            'bot_agent' => $bot->getUserName(),
            'can_create_tickets' => (bool) $key->canCreateTickets(),
            'bot_departments' => (object) $departments,
            'actions' => array('note', 'assign', 'fields', 'status', 'link'),
        ));
    }

    function ticket($id, $action) {
        $this->authorize();
        $bot = $this->bot();
        $data = $this->body();
        $ticket = Ticket::lookup((int) $id);
        if (!$ticket)
            $this->fail(404, 'no_ticket', sprintf('No ticket with id %d', $id));
        if (!$ticket->checkStaffPerm($bot))
            $this->fail(403, 'no_access', sprintf('Bot agent %s cannot access ticket #%s (department)',
                $bot->getUserName(), $ticket->getNumber()));

        $requestId = isset($data['request_id']) ? trim((string) $data['request_id']) : '';
        if ($requestId !== '') {
            if (strlen($requestId) > 200)
                $this->fail(400, 'bad_request', 'request_id is longer than 200 characters');
            if (($done = $this->recorded($requestId)) !== null) {
                if ($done['ticket_id'] != $ticket->getId() || $done['action'] != $action)
                    $this->fail(409, 'request_id_reused', sprintf(
                        'request_id was used for %s on ticket id %d',
                        $done['action'], $done['ticket_id']));
                $body = $done['body'];
                $body['replayed'] = true;
                $this->reply($done['code'], $body);
            }
        }

        switch ($action) {
        case 'note':
            list($code, $body) = $this->note($ticket, $bot, $data, $requestId);
            break;
        case 'assign':
            list($code, $body) = $this->assign($ticket, $bot, $data);
            break;
        case 'fields':
            list($code, $body) = $this->fields($ticket, $bot, $data);
            break;
        case 'status':
            list($code, $body) = $this->status($ticket, $bot, $data);
            break;
        case 'link':
            list($code, $body) = $this->link($ticket, $bot, $data);
            break;
        }
        $body = array('ok' => true, 'ticket_id' => (int) $ticket->getId(),
            'number' => $ticket->getNumber()) + $body + array('replayed' => false);
        if ($requestId !== '')
            $this->record($requestId, $ticket->getId(), $action, $code, $body);
        $this->reply($code, $body);
    }

    private function note($ticket, $bot, array $data, $requestId) {
        $html = isset($data['html']) ? (string) $data['html'] : '';
        $title = isset($data['title']) ? trim((string) $data['title']) : '';
        if ($requestId === '')
            $this->fail(400, 'bad_request', 'A note needs a request_id');
        if (trim(strip_tags($html)) === '')
            $this->fail(400, 'bad_request', 'A note needs html with some text');
        // Written before, its answer lost: the request id is in its body.
        $entry = $ticket->getThread()->entries->filter(array(
            'type' => 'N', 'body__contains' => $requestId))->first();
        if ($entry)
            return array(201, array('entry_id' => (int) $entry->getId(), 'found' => true));
        $errors = array();
        $vars = array(
            'title' => $title ?: 'Escalation',
            'note' => new HtmlThreadEntryBody($html),
            'poster' => $bot->getName(),
        );
        $note = $ticket->postNote($vars, $errors, $bot, false);
        if (!$note)
            $this->fail(422, 'refused', 'osTicket refused the note: ' . $this->errorText($errors));
        return array(201, array('entry_id' => (int) $note->getId(), 'found' => false));
    }

    private function assign($ticket, $bot, array $data) {
        if (!$ticket->checkStaffPerm($bot, Ticket::PERM_ASSIGN))
            $this->fail(403, 'permission', sprintf('Bot agent %s lacks the permission %s',
                $bot->getUserName(), Ticket::PERM_ASSIGN));
        $staffRef = isset($data['staff']) ? trim((string) $data['staff']) : '';
        $teamRef = isset($data['team']) ? trim((string) $data['team']) : '';
        if ($staffRef === '' && $teamRef === '')
            $this->fail(400, 'bad_request', 'assign needs "staff" (username or email) or "team" (name)');
        $comment = isset($data['comment']) ? (string) $data['comment'] : '';
        $changed = array();
        if ($teamRef !== '') {
            $team = is_numeric($teamRef) ? Team::lookup((int) $teamRef)
                : Team::lookup(array('name' => $teamRef));
            if (!$team)
                $this->fail(422, 'no_team', sprintf('No team "%s"', $teamRef));
            if ($ticket->getTeamId() != $team->getId()) {
                if (!$ticket->assignToTeam($team, $comment, false))
                    $this->fail(422, 'refused', sprintf('osTicket did not assign team "%s" (inactive?)', $teamRef));
                $changed[] = 'team';
            }
        }
        if ($staffRef !== '') {
            $staff = Staff::lookup(array('username' => $staffRef))
                ?: Staff::lookup(array('email' => $staffRef));
            if (!$staff)
                $this->fail(422, 'no_agent', sprintf('No agent "%s"', $staffRef));
            if ($ticket->getStaffId() != $staff->getId()) {
                if (!$ticket->assignToStaff($staff, $comment, false))
                    $this->fail(422, 'refused', sprintf('osTicket did not assign agent "%s" (inactive or away?)', $staffRef));
                $changed[] = 'staff';
            }
        }
        return array(200, array('staff_id' => (int) $ticket->getStaffId(),
            'team_id' => (int) $ticket->getTeamId(), 'changed' => $changed));
    }

    private function fields($ticket, $bot, array $data) {
        if (!$ticket->checkStaffPerm($bot, Ticket::PERM_EDIT))
            $this->fail(403, 'permission', sprintf('Bot agent %s lacks the permission %s',
                $bot->getUserName(), Ticket::PERM_EDIT));
        $values = isset($data['fields']) ? $data['fields'] : null;
        if (!is_array($values) || !$values)
            $this->fail(400, 'bad_request', 'fields needs "fields": {"<variable name>": "<value>", ...}');
        $changed = array();
        foreach ($values as $name => $value) {
            $field = $this->fieldOf($ticket, (string) $name);
            if (!$field)
                $this->fail(422, 'no_field', sprintf(
                    'Ticket #%s has no form field with variable name "%s"', $ticket->getNumber(), $name));
            $form = $field->getEditForm(array($field->get('name') => (string) $value));
            if (!$form->isValid())
                $this->fail(422, 'invalid', sprintf('Field "%s": %s', $name,
                    $this->errorText($form->errors(true))));
            if (!$field->getChanges())
                continue;
            $errors = array();
            if (!$ticket->updateField($form, $errors))
                $this->fail(422, 'refused', sprintf('Field "%s": %s', $name, $this->errorText($errors)));
            $changed[] = (string) $name;
        }
        return array(200, array('changed' => $changed));
    }

    private function fieldOf($ticket, $name) {
        foreach (DynamicFormEntry::forTicket($ticket->getId()) as $entry)
            foreach ($entry->getFields() as $field)
                if ($field->get('name') === $name)
                    return $field;
        return null;
    }

    private function status($ticket, $bot, array $data) {
        $ref = isset($data['status']) ? trim((string) $data['status']) : '';
        if ($ref === '')
            $this->fail(400, 'bad_request', 'status needs "status" (a ticket status name)');
        $status = TicketStatus::lookup(array('name' => $ref));
        if (!$status)
            $this->fail(422, 'no_status', sprintf('No ticket status "%s"', $ref));
        if ($ticket->getStatusId() == $status->getId())
            return array(200, array('status' => $status->getName(), 'changed' => false));
        if ($status->getState() == 'closed' && ($warning = $ticket->isCloseable()) !== true)
            $this->fail(422, 'not_closeable', sprintf('Ticket #%s cannot be closed: %s',
                $ticket->getNumber(), strip_tags((string) $warning)));
        $errors = array();
        $comment = isset($data['comment']) ? (string) $data['comment'] : '';
        if (!$ticket->setStatus($status, $comment, $errors, false))
            $this->fail(422, 'refused', sprintf('osTicket did not set status "%s": %s', $ref,
                $this->errorText($errors) ?: 'the bot agent may lack the permission'));
        return array(200, array('status' => $status->getName(), 'changed' => true));
    }

    private function link($child, $bot, array $data) {
        $parentId = isset($data['parent_id']) ? (int) $data['parent_id'] : 0;
        $parent = $parentId ? Ticket::lookup($parentId) : null;
        if (!$parent)
            $this->fail(422, 'no_ticket', sprintf('No parent ticket with id %d', $parentId));
        if ($parent->getId() == $child->getId())
            $this->fail(400, 'bad_request', 'A ticket cannot be linked to itself');
        foreach (array($child, $parent) as $t)
            if (!$t->checkStaffPerm($bot, Ticket::PERM_LINK))
                $this->fail(403, 'permission', sprintf('Bot agent %s lacks the permission %s on #%s',
                    $bot->getUserName(), Ticket::PERM_LINK, $t->getNumber()));
        if ($child->getPid() == $parent->getId() && $child->getMergeType() == 'visual')
            return array(200, array('parent_id' => (int) $parent->getId(), 'changed' => false));
        if ($child->getPid() || $child->isParent())
            $this->fail(422, 'already_linked', sprintf('Ticket #%s is already linked or merged', $child->getNumber()));
        if ($parent->isChild())
            $this->fail(422, 'already_linked', sprintf('Ticket #%s is itself linked to another', $parent->getNumber()));
        // What Ticket::manageMerge does for a fresh link (combine = 2).
        $parent->logEvent('linked', array('ticket' => sprintf('Ticket #%s', $child->getNumber()), 'id' => $child->getId()));
        $child->logEvent('linked', array('ticket' => sprintf('Ticket #%s', $parent->getNumber()), 'id' => $parent->getId()));
        $child->setPid($parent->getId());
        $parent->setMergeType(2, true);
        $child->setMergeType(2);
        return array(200, array('parent_id' => (int) $parent->getId(), 'changed' => true));
    }

    private function errorText($errors) {
        if (!$errors)
            return '';
        $parts = array();
        foreach ((array) $errors as $k => $v)
            $parts[] = is_array($v) ? implode('; ', $v) : (string) $v;
        return strip_tags(implode('; ', $parts));
    }
}
